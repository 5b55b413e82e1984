"""Alpaca's failures as the project's errors (B1-B5, X4, X6, S2).

Every way a call can fail, an HTTP error answer (status, Alpaca's error code and message,
Retry-After) or no usable answer at all, becomes exactly one error of `trading.errors`
(table in `translate_api_error`). Messages are built from text already masked at the
transport and are masked again, and clipped, here: a hostile server's echo of the keys
never reaches an error.
"""

import json
import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import requests
from alpaca.common.exceptions import APIError

from tecl_pipeline.observability.redaction import Redactor, redact
from tecl_pipeline.trading.errors import (
    AuthError,
    BrokerError,
    BrokerUnavailableError,
    DataEntitlementError,
    DuplicateClientOrderIdError,
    NotFoundError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)

# How a failure is read depends on what was asked: a lost answer to a read is harmless,
# a lost answer to a submit may hide a live order.
CallKind = Literal["read", "submit", "cancel"]

_AUTH_MARKERS = (
    "unauthorized",
    "not authorized",
    "forbidden",
    "authenticat",
    "api key",
    "access key",
    "credential",
    "key id",
)
# Checked before the auth markers: "account is not authorized to trade" is a blocked
# account, not a refused key, and refreshing credentials would not change it.
_REJECTION_MARKERS = ("buying power", "insufficient", "to trade", "not allowed", "blocked")
# Alpaca's market data 403 for a feed the plan does not include ("subscription does not
# permit querying recent SIP data"): checked before the auth markers, since refreshing the
# keys would not change the plan.
_ENTITLEMENT_MARKER = "subscription does not permit"
_MESSAGE_LIMIT = 300


class RedirectRefusedError(requests.RequestException):
    """The server answered with a redirect, which is not followed: requests would resend
    the APCA key headers to wherever it points (it strips only `Authorization`)."""


@dataclass(frozen=True)
class ErrorBody:
    """What an HTTP error response said, read without trusting its shape."""

    status: int | None
    code: int | None
    message: str
    retry_after: float | None


def clip_message(text: str, redactor: Redactor | None = None) -> str:
    """One line of at most `_MESSAGE_LIMIT` characters, for an error message."""
    # Masked before the cut: a clipped secret (or a prefix of one) no longer matches whole.
    text = " ".join(redact(text, redactor).split())
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "..."


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


_MIN_RATE_LIMIT_WAIT = 1.0


def parse_rate_limit_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until an X-RateLimit-Reset (seconds since the epoch, when the window's budget
    is back), at least one: a reset that reads as past means this host's clock runs ahead of
    the broker's, and asking again at once would only spend the retries in the same window.
    None if absent or not a number."""
    try:
        reset = float(value) if value is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(reset):
        return None
    return max(_MIN_RATE_LIMIT_WAIT, reset - (time.time() if now is None else now))


def read_error_body(exc: APIError, redactor: Redactor | None = None) -> ErrorBody:
    """Status, Alpaca error code, message and Retry-After of an APIError.

    APIError.code/.message call json.loads on the body, so an HTML page from a gateway
    (a 502 from a load balancer) would raise inside the handler: read the body here instead.
    The message is masked by `redactor` before it is clipped.
    """
    response = exc.response
    status = getattr(response, "status_code", None)
    text = response.text if response is not None else str(exc)
    headers = response.headers if response is not None else {}
    code: int | None = None
    message = ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        raw_message = body.get("message")
        message = raw_message if isinstance(raw_message, str) else clip_message(text, redactor)
    elif text.strip():
        stripped = re.sub(r"<[^>]*>", " ", text)
        message = f"non-JSON body: {clip_message(stripped, redactor)}"
    else:
        message = "empty body"
    retry_after = parse_retry_after(headers.get("Retry-After"))
    if retry_after is None and status == 429:
        # Alpaca sends no Retry-After with its 429; its window's reset says when to come back.
        retry_after = parse_rate_limit_reset(headers.get("X-RateLimit-Reset"))
    return ErrorBody(
        status=status,
        code=code,
        message=clip_message(message, redactor),
        retry_after=retry_after,
    )


def _describe(endpoint: str, body: ErrorBody) -> str:
    code = f" (code {body.code})" if body.code is not None else ""
    return f"{endpoint}: HTTP {body.status}: {body.message}{code}"


def translate_api_error(
    exc: APIError, endpoint: str, kind: CallKind, redactor: Redactor | None = None
) -> BrokerError:
    """One HTTP error response -> one project error.

    | status              | error                                                       |
    | ------------------- | ----------------------------------------------------------- |
    | 429                 | RateLimitedError(retry_after=Retry-After, else    retried   |
    |                     | until X-RateLimit-Reset)                                    |
    | 5xx                 | BrokerUnavailableError(retry_after=Retry-After)   retried   |
    | 401                 | AuthError                          refresh once, then stop  |
    | 403 subscription    | DataEntitlementError (a refusal: the data plan lacks the    |
    | does not permit     | feed)                                         never retried |
    | 403 buying power,   | OrderRejectedError(message, code)             never retried |
    | qty, blocked        |                                                             |
    | 403 auth message    | AuthError                          refresh once, then stop  |
    | 403 other           | submit: OrderRejectedError; else BrokerError                |
    | 404                 | NotFoundError                                               |
    | 422 id not unique   | DuplicateClientOrderIdError (submit)                        |
    | 400/422 other       | submit: OrderRejectedError naming the rule                  |
    | 422                 | cancel: OrderRejectedError (not cancelable: already final)  |
    | 400/422 on reads    | BrokerError                                                 |
    | anything else       | BrokerError                                                 |
    """
    body = read_error_body(exc, redactor)
    status = body.status
    message = _describe(endpoint, body)
    lowered = body.message.lower()
    if status == 429:
        return RateLimitedError(message, retry_after=body.retry_after)
    if status is not None and 500 <= status < 600:
        return BrokerUnavailableError(message, retry_after=body.retry_after)
    if status == 401:
        return AuthError(message)
    if status == 403:
        if _ENTITLEMENT_MARKER in lowered:
            return DataEntitlementError(message)
        if kind == "submit" and any(marker in lowered for marker in _REJECTION_MARKERS):
            return OrderRejectedError(message, code=body.code)
        if any(marker in lowered for marker in _AUTH_MARKERS):
            return AuthError(message)
        if kind == "submit":
            return OrderRejectedError(message, code=body.code)
        return BrokerError(message)
    if status == 404:
        return NotFoundError(message)
    if status == 422 and kind == "submit" and "client_order_id" in lowered and "unique" in lowered:
        return DuplicateClientOrderIdError(message)
    if (status in (400, 422) and kind == "submit") or (status == 422 and kind == "cancel"):
        return OrderRejectedError(f"{message}; the broker's rule was not met", code=body.code)
    return BrokerError(message)


def translate_transport_error(
    exc: requests.RequestException, endpoint: str, kind: CallKind
) -> BrokerError:
    """No usable HTTP answer: a read can simply be retried; a write may have happened."""
    # The transport's text is a sentence naming the server (_GuardedAdapter), not a class.
    detail = clip_message(" ".join(str(exc).split()))
    if isinstance(exc, RedirectRefusedError):
        # An answer, just not one to act on: trying again would be answered the same way.
        return BrokerError(f"{endpoint}: {detail}")
    if kind == "read":
        return BrokerUnavailableError(f"{endpoint}: no answer from the broker ({detail})")
    return OutcomeUnknownError(
        f"{endpoint}: the request may have reached the broker but no answer arrived ({detail})"
    )
