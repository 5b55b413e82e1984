"""Which AWS answers are worth another attempt: one rule for every AWS client of the project
(the S3 journal, Secrets Manager). The project's retry policy acts on it; botocore's own
retries are off (one attempt per call), so no call is retried twice over."""

# Throttling, and a service that could not answer now. Any HTTP 5xx or 429 is transient too,
# whatever its code (HEAD answers carry no code at all).
TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "InternalError",
        "InternalServiceError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def transient_answer(code: str, status: object) -> bool:
    """An answer (error code, HTTP status) that a later attempt may not get again."""
    return code in TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429))
