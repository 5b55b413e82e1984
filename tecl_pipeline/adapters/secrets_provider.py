"""Choose where the Alpaca credentials come from, from the deployment's values, keyed by the
variables that set them so that every error names the one to fix (C4, S5, A1, A5).

`TECL_SECRET_ID` set: a `SecretsManagerCredentials` over a boto3 client in the region from
AWS_REGION / AWS_DEFAULT_REGION (or the secret's ARN), at TECL_SECRETS_ENDPOINT_URL when
set (tests, VPC endpoints). Otherwise the ALPACA_* pair of `environ` (`EnvCredentials`).
Nothing here touches the network or even imports boto3: the client is built on first use.
"""

import threading
from collections.abc import Callable, Mapping
from typing import Any

from tecl_pipeline.adapters.aws.secrets_errors import SecretConfigError
from tecl_pipeline.adapters.aws.secrets_manager import SecretsManagerCredentials
from tecl_pipeline.common.endpoints import validate_endpoint
from tecl_pipeline.config.settings import ENV_KEYS, REGION_VARS
from tecl_pipeline.trading.credentials import CredentialsProvider, EnvCredentials

SECRET_ID_VAR = ENV_KEYS["secret_id"]
ENDPOINT_VAR = ENV_KEYS["secrets_endpoint_url"]

# Per attempt; the provider's retry policy bounds the whole read (20 s by default).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


def credentials_from_env(environ: Mapping[str, str], **options: Any) -> CredentialsProvider:
    """The credentials provider `environ` (variable -> value) asks for; `options` (ttl,
    max_age, grace, clock, sleep, retry, rng, on_event) go to `SecretsManagerCredentials`.

    Raises `SecretConfigError` at once (no network) when the secret is configured but the
    region is missing or disagrees with the secret's ARN, or the endpoint is unsafe.
    """
    secret_id = (environ.get(SECRET_ID_VAR) or "").strip()
    if not secret_id:
        return EnvCredentials(environ)
    region = _region(secret_id, environ)
    endpoint = (environ.get(ENDPOINT_VAR) or "").strip() or None
    if endpoint is not None:
        try:
            endpoint = validate_endpoint(endpoint, what=ENDPOINT_VAR)
        except ValueError as exc:
            raise SecretConfigError(str(exc), secret_id=secret_id) from None
    client = LazyClient(lambda: _secretsmanager_client(region, endpoint), region, endpoint)
    return SecretsManagerCredentials(secret_id, client, **options)


def _region(secret_id: str, environ: Mapping[str, str]) -> str:
    from_env = next(
        ((var, value.strip()) for var in REGION_VARS if (value := environ.get(var, "")).strip()),
        None,
    )
    from_arn = _arn_region(secret_id)
    if from_env is not None and from_arn is not None and from_env[1] != from_arn:
        raise SecretConfigError(
            f"{from_env[0]}={from_env[1]!r} but the secret's ARN is in region {from_arn!r}; "
            "a secret is only found in its own region (A5)",
            secret_id=secret_id,
        )
    region = from_arn or (from_env[1] if from_env is not None else None)
    if not region:
        raise SecretConfigError(
            f"{SECRET_ID_VAR} is set but neither {' nor '.join(REGION_VARS)} is; set the AWS "
            "region of the secret (or use its full ARN)",
            secret_id=secret_id,
        )
    return region


def _arn_region(secret_id: str) -> str | None:
    # arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME
    parts = secret_id.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "secretsmanager" and parts[3]:
        return parts[3]
    return None


def _secretsmanager_client(region: str, endpoint: str | None) -> object:
    from botocore.config import Config

    from tecl_pipeline.adapters.aws.session import aws_session

    config = Config(
        # The provider retries under the project's policy; botocore must not add its own.
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
    )
    # A session of its own: boto3's default session is not safe to share across threads.
    return aws_session().client(
        "secretsmanager", region_name=region, endpoint_url=endpoint, config=config
    )


class LazyClient:
    """Stands in for a boto3 client and builds it on first attribute access (A1)."""

    def __init__(
        self, make: Callable[[], object], region: str, endpoint: str | None = None
    ) -> None:
        self._make = make
        self._region = region
        self._endpoint = endpoint
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def built(self) -> bool:
        return self._client is not None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        with self._lock:
            if self._client is None:
                self._client = self._make()
        return getattr(self._client, name)

    def __repr__(self) -> str:
        return f"LazyClient(secretsmanager, region={self._region!r}, endpoint={self._endpoint!r})"

    def close(self) -> None:
        """Close the client's connections, if it was ever built."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
