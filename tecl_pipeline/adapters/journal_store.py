"""Which journal store a state URI means: `file:///DIR` (LocalJournal) or
`s3://BUCKET[/PREFIX]` (S3Journal).

Above both stores on purpose: the journal (state/) knows neither the S3 adapter nor the
configuration's URI rules, and the S3 store knows only the journal's interface, so the one
place that knows both is here, beside `secrets_provider` (which picks env vs Secrets
Manager the same way). Dagster's StateResource and the soak/replay world use it.
"""

from pathlib import Path
from urllib.parse import urlsplit

from tecl_pipeline.common.events import EventSink
from tecl_pipeline.config.settings import ConfigError, local_state_dir
from tecl_pipeline.state.journal.base import JournalStore
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.spool import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, Spool


def open_journal(
    state_uri: str,
    *,
    spool_dir: Path,
    s3_client: object | None = None,
    on_event: EventSink | None = None,
    spool_max_files: int = DEFAULT_MAX_FILES,
    spool_max_bytes: int = DEFAULT_MAX_BYTES,
) -> JournalStore:
    """The journal at `state_uri`: file:///DIR or s3://BUCKET[/PREFIX].

    `s3_client` is a boto3 S3 client (the Dagster layer passes S3Resource.get_client());
    without one a client with bounded retries and timeouts is made from the environment.
    No network I/O happens here; call `preflight()` before trading.
    """
    parts = urlsplit(state_uri)
    if "@" in parts.netloc:
        # Never echo it: a user-info part may carry a secret.
        raise ConfigError("state_uri must not contain a user name or password")
    if parts.query or parts.fragment:
        raise ConfigError(f"state_uri {state_uri!r} must not have a query or fragment")
    root = local_state_dir(state_uri)
    if root is not None:
        if parts.netloc not in ("", "localhost") or not root.is_absolute():
            raise ConfigError(f"state_uri {state_uri!r} is not an absolute file:///DIR URI")
        return LocalJournal(
            root,
            spool_dir=spool_dir,
            on_event=on_event,
            spool_max_files=spool_max_files,
            spool_max_bytes=spool_max_bytes,
        )
    if parts.scheme == "s3":
        # Imported here: a local journal never needs botocore (loading the definitions, A1).
        from tecl_pipeline.adapters.aws.s3_journal import S3Journal, default_s3_client, valid_bucket

        if not valid_bucket(parts.netloc):
            raise ConfigError(f"state_uri {state_uri!r}: {parts.netloc!r} is not a bucket name")
        spool = Spool(
            spool_dir, max_files=spool_max_files, max_bytes=spool_max_bytes, on_event=on_event
        )
        return S3Journal(
            s3_client if s3_client is not None else default_s3_client(),
            parts.netloc,
            parts.path.strip("/"),
            spool=spool,
            on_event=on_event,
        )
    raise ConfigError(f"state_uri {state_uri!r}: expected file:///DIR or s3://BUCKET[/PREFIX]")
