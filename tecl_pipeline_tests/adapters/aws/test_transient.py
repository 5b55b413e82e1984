"""One rule for every AWS client of the project: which answers are worth another attempt
(C4, D1). The S3 journal and Secrets Manager both ask `transient_answer`."""

import pytest

from tecl_pipeline.adapters.aws.transient import TRANSIENT_CODES, transient_answer


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_a_5xx_or_429_is_transient_whatever_its_code(status: int) -> None:
    assert transient_answer("AccessDenied", status)
    assert transient_answer("", status)


@pytest.mark.parametrize("code", sorted(TRANSIENT_CODES))
def test_throttling_and_unavailability_codes_are_transient_under_any_status(code: str) -> None:
    assert transient_answer(code, 400)
    assert transient_answer(code, None)


@pytest.mark.parametrize(
    "code",
    [
        "AccessDenied",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "NoSuchBucket",
        "PreconditionFailed",
        "PermanentRedirect",
        "InvalidRequestException",
        "DecryptionFailure",
    ],
)
@pytest.mark.parametrize("status", [301, 400, 403, 404, 412, None])
def test_a_definite_answer_is_not_retried(code: str, status: int | None) -> None:
    assert not transient_answer(code, status)
