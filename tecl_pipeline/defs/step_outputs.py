"""Where the steps' outputs are kept when the state is in S3: beside the journal, under
`<prefix>/dagster-io/`, pickled by dagster-aws's S3 IO manager, so a re-execution from
failure started by another process or container reads the inputs its steps need.

Opened lazily, at the first output stored or input loaded: loading the definitions never
imports the AWS client (no network I/O at load, A1), and a step meets the store only after
its body has run the journal's preflight, which names what is wrong with the bucket (A4,
A5) instead of a raw client error.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from dagster import InitResourceContext, InputContext, IOManager, IOManagerDefinition, OutputContext

OUTPUTS_FOLDER = "dagster-io"


class _OpenedOnFirstUse(IOManager):
    def __init__(self, open_store: Callable[[], IOManager]) -> None:
        self._open_store = open_store
        self._store: IOManager | None = None

    def _opened(self) -> IOManager:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        self._opened().handle_output(context, obj)

    def load_input(self, context: InputContext) -> Any:
        return self._opened().load_input(context)


def s3_outputs(state_uri: str, region: str | None) -> IOManagerDefinition | None:
    """The outputs' store for `state_uri` if it is s3://BUCKET[/PREFIX]; else None (Dagster's
    default: the instance's storage, a volume the compose stack shares)."""
    parts = urlsplit(state_uri)
    if parts.scheme != "s3":
        return None
    bucket = parts.netloc
    prefix = "/".join(part for part in (parts.path.strip("/"), OUTPUTS_FOLDER) if part)

    def open_store() -> IOManager:
        from dagster_aws.s3 import S3Resource
        from dagster_aws.s3.io_manager import PickledObjectS3IOManager

        client = S3Resource(region_name=region).get_client()
        return PickledObjectS3IOManager(s3_bucket=bucket, s3_session=client, s3_prefix=prefix)

    def init(_: InitResourceContext) -> IOManager:
        return _OpenedOnFirstUse(open_store)

    return IOManagerDefinition(
        resource_fn=init, description=f"the steps' outputs in s3://{bucket}/{prefix}/"
    )
