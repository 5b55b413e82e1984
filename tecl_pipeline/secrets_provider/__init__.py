"""Alpaca credentials from AWS Secrets Manager (A6, S1, S2, S4, S7, X6).

Named `secrets_provider`, not `secrets`: a `secrets` package would shadow the standard
library's `secrets` module whenever `tecl_pipeline/` itself is on `sys.path` (a module of
the package run as a script, some tools), breaking werkzeug, dagster and the stdlib.
"""

from tecl_pipeline.secrets_provider.errors import (
    SecretAccessDeniedError,
    SecretAccessError,
    SecretConfigError,
    SecretDecryptionError,
    SecretInvalidRequestError,
    SecretMalformedError,
    SecretNotFoundError,
    SecretsProviderError,
    SecretUnavailableError,
)
from tecl_pipeline.secrets_provider.factory import credentials_from_env
from tecl_pipeline.secrets_provider.secrets_manager import (
    EVENT_ACCESS_FAILURE,
    EVENT_AGE_UNKNOWN,
    EVENT_MALFORMED,
    EVENT_ROTATION_OVERDUE,
    EVENT_STALE_CACHE,
    EVENT_UNAVAILABLE,
    SecretsManagerCredentials,
    parse_secret_string,
)

__all__ = [
    "EVENT_ACCESS_FAILURE",
    "EVENT_AGE_UNKNOWN",
    "EVENT_MALFORMED",
    "EVENT_ROTATION_OVERDUE",
    "EVENT_STALE_CACHE",
    "EVENT_UNAVAILABLE",
    "SecretAccessDeniedError",
    "SecretAccessError",
    "SecretConfigError",
    "SecretDecryptionError",
    "SecretInvalidRequestError",
    "SecretMalformedError",
    "SecretNotFoundError",
    "SecretUnavailableError",
    "SecretsManagerCredentials",
    "SecretsProviderError",
    "credentials_from_env",
    "parse_secret_string",
]
