"""A boto3 session for each AWS client, all sharing one botocore data loader.

A new boto3 session parses botocore's service models and endpoint tables from disk again
(several megabytes of JSON, about 0.1 s for each client made). Those files never change while
a process runs, so every session of the process reads them through one loader and its cache;
everything else about a session (credentials, region) stays its own, as boto3 requires for
clients used from more than one thread.
"""

from functools import cache
from typing import Any

import boto3.session
import botocore.loaders
import botocore.session


@cache
def _data_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def aws_session(**options: Any) -> boto3.session.Session:
    """A boto3 session (`options` as for `boto3.session.Session`) on the shared loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _data_loader())
    return boto3.session.Session(botocore_session=core, **options)
