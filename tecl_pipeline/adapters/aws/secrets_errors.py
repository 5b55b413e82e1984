"""Why the Alpaca credentials could not be read from AWS Secrets Manager (A4, A6, S4).

Every error here is a `RefusedToTrade`: without credentials the pipeline stops before any
order, with the reason in the run's event log (the Dagster layer turns it into a refusal).
None of them is a `BrokerError`, so the broker adapters neither retry them nor mistake
them for the broker refusing a key (which would trigger a credentials refresh, B4).

Messages name the secret id, the AWS operation and error code, and what to check; they
never contain a secret value (S2).
"""

from tecl_pipeline.core.errors import RefusedToTrade


class SecretsProviderError(RefusedToTrade):
    """The credentials secret could not be used; `secret_id` names it."""

    def __init__(self, message: str, *, secret_id: str) -> None:
        super().__init__(message)
        self.secret_id = secret_id


class SecretConfigError(SecretsProviderError, ValueError):
    """The settings that point at the secret are missing or unsafe (C4, S5)."""


class SecretUnavailableError(SecretsProviderError):
    """Secrets Manager could not be reached or kept failing transiently (throttling, 5xx,
    connection errors) through every retry, and no cached value was usable (A6)."""

    def __init__(self, message: str, *, secret_id: str, code: str) -> None:
        super().__init__(message, secret_id=secret_id)
        self.code = code


class SecretAccessError(SecretsProviderError):
    """Secrets Manager gave a definite refusal (not retried, S4); `code` is the AWS error
    code and `operation` the API call (e.g. GetSecretValue)."""

    def __init__(self, message: str, *, secret_id: str, code: str, operation: str) -> None:
        super().__init__(message, secret_id=secret_id)
        self.code = code
        self.operation = operation


class SecretNotFoundError(SecretAccessError):
    """ResourceNotFoundException: no such secret in this account and region."""


class SecretAccessDeniedError(SecretAccessError):
    """AccessDeniedException: the pipeline's IAM identity may not read the secret (A4)."""


class SecretDecryptionError(SecretAccessError):
    """DecryptionFailure: the secret's KMS key could not decrypt it (kms:Decrypt denied,
    key disabled or pending deletion)."""


class SecretInvalidRequestError(SecretAccessError):
    """InvalidRequestException: e.g. the secret is marked for deletion."""


class SecretMalformedError(SecretsProviderError, ValueError):
    """The secret was read, but does not hold the credentials in the expected JSON shape;
    `field` names the missing or bad field when there is one."""

    def __init__(self, message: str, *, secret_id: str, field: str | None = None) -> None:
        super().__init__(message, secret_id=secret_id)
        self.field = field
