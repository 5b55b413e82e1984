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
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.config.settings import ConfigError, local_state_dir, validate_state_uri
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
    s3_retry: RetryPolicy | None = None,
    read_only: bool = False,
) -> JournalStore:
    """The journal at `state_uri`: file:///DIR or s3://BUCKET[/PREFIX].

    `s3_client` is a boto3 S3 client without retries of its own (`client_config()`); without
    one such a client is made from the environment. `s3_retry` replaces the S3 journal's
    retry policy. `read_only`: nothing is written, spooled or moved (an invalid record is
    skipped and named in `invalid`), for readers that are not runs.
    No network I/O happens here; call `preflight()` before trading.
    """
    try:
        validate_state_uri(state_uri)
    except ValueError as exc:
        raise ConfigError(f"state_uri {exc}") from None
    parts = urlsplit(state_uri)
    root = local_state_dir(state_uri)
    if root is not None:
        return LocalJournal(
            root,
            spool_dir=spool_dir,
            on_event=on_event,
            spool_max_files=spool_max_files,
            spool_max_bytes=spool_max_bytes,
            read_only=read_only,
        )
    # What validate_state_uri leaves besides file:// is s3://BUCKET[/PREFIX]. Imported here: a
    # local journal never needs botocore (loading the definitions, A1).
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
        retry=s3_retry,
        read_only=read_only,
    )
