"""The Alpaca adapter: the `Broker` protocol on alpaca-py's `TradingClient`.

What alpaca-py does not do, this module does (DESIGN.md, "Measured facts about alpaca-py"):

- every request has a timeout (alpaca-py sets none, so a hung server hangs the run, B2);
- alpaca-py's own fixed-wait 429/504 retry is off; `broker.retry` is the one policy (C6);
- every body is validated into the project's models, and a 2xx carrying an error body or
  an unexpected shape is a `MalformedResponseError`, never success (B3, X4);
- every failure becomes one of the errors in `broker.models` (table in `translate_api_error`);
- an order whose acknowledgement was lost is looked up by its client order id before
  anything else, and resent only with the same id (B5);
- refused credentials are refreshed once, then the call fails with `AuthError` (B4, X6);
- the key id and the secret, in every encoding a server may echo them back, are masked at
  the transport, in bodies, headers, status lines and URLs, before alpaca-py or this module
  builds anything from an answer; redirects are not followed (the request carries the
  keys); the project's errors are built from that masked text and do not chain alpaca-py's
  or requests' exceptions (S2);
- a read whose answer cannot be used is asked again under the retry policy (B3).

alpaca-py's typed models are bypassed (raw_data=True): the project's own models, with
`extra="forbid"`, are the schema, and the fields they need are picked out explicitly.
"""

import functools
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

import requests
from alpaca.common.enums import BaseURL, Sort
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from tecl_pipeline.common.endpoints import validate_endpoint
from tecl_pipeline.common.retry import RetryPolicy, call_with_retry
from tecl_pipeline.observability.redaction import Redactor, redact
from tecl_pipeline.trading.credentials import (
    Credentials,
    CredentialsProvider,
    MissingCredentialsError,
)
from tecl_pipeline.trading.models import (
    Account,
    Asset,
    AuthError,
    BrokerError,
    BrokerUnavailableError,
    Clock,
    DuplicateClientOrderIdError,
    MalformedReadError,
    MalformedResponseError,
    NotFoundError,
    Order,
    OrderRejectedError,
    OrderRequest,
    OutcomeUnknownError,
    Position,
    RateLimitedError,
    RetryableBrokerError,
)

if TYPE_CHECKING:
    from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound=RESTClient)

# How a failure is read depends on what was asked: a lost answer to a read is harmless,
# a lost answer to a submit may hide a live order.
CallKind = Literal["read", "submit", "cancel"]

ORDERS_PAGE_LIMIT = 500  # Alpaca's maximum for GET /v2/orders
MAX_ORDER_PAGES = 1_000  # a guard against a server that keeps paging forever
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,31}$")
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
_KNOWN_HOSTS_PAPER = frozenset({urlsplit(BaseURL.TRADING_PAPER.value).hostname})
_KNOWN_HOSTS_LIVE = frozenset({urlsplit(BaseURL.TRADING_LIVE.value).hostname})
_MESSAGE_LIMIT = 300
_AWARE_DATETIME = TypeAdapter(AwareDatetime)


# --------------------------------------------------------------------------- endpoints


class RedirectRefusedError(requests.RequestException):
    """The server answered with a redirect, which is not followed: requests would resend
    the APCA key headers to wherever it points (it strips only `Authorization`)."""


def _innermost_reason(exc: BaseException) -> str:
    """What the operating system or the peer said, below requests' and urllib3's wrappers
    (MaxRetryError(NewConnectionError(ConnectionRefusedError)) and the like)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    last = exc
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        last = error
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        below = (getattr(error, "reason", None), error.__cause__, error.__context__, *error.args)
        pending.extend(e for e in below if isinstance(e, BaseException))
    return " ".join(str(last).split())


def _no_answer_sentence(
    exc: requests.RequestException, request: requests.PreparedRequest, timeout: object
) -> str:
    """The transport failure as a sentence naming the server: what a person reads in place
    of requests' `HTTPConnectionPool(host=..., port=...): Max retries exceeded ...`."""
    parts = urlsplit(request.url or "")
    server = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the server"
    if isinstance(exc, requests.ConnectTimeout):
        return f"{server} timed out: no connection within {timeout} s"
    if isinstance(exc, requests.Timeout):
        return f"{server} timed out: no answer within {timeout} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"{server}: the TLS handshake failed: {_innermost_reason(exc)}"
    if isinstance(exc, requests.ConnectionError):
        return f"{server} did not answer: {_innermost_reason(exc).lower()}"
    return f"{server}: the answer was cut short or unreadable: {_innermost_reason(exc)}"


def _masked_copy(
    exc: requests.RequestException, text: str, redactor: Redactor
) -> requests.RequestException:
    """A transport error of the same kind, carrying only `text`, masked."""
    text = redactor.redact(text)
    try:
        return type(exc)(text)
    except Exception:  # a subclass with another signature: keep the family, not the type
        return requests.ConnectionError(text)


class _GuardedAdapter(HTTPAdapter):
    """The transport boundary: a timeout on every request, no redirects, and every answer
    (or failure) masked by `redactor` before anything above reads it (S2)."""

    def __init__(self, timeout: float, redactor: Redactor) -> None:
        super().__init__(max_retries=0)  # no hidden urllib3 retries either
        self._timeout = timeout
        self._redactor = redactor

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        failure: requests.RequestException | None = None
        try:
            response = super().send(request, *args, **kwargs)
            content = response.content  # read here, so a body cut short fails here too
        except requests.RequestException as exc:
            # The text can hold the URL or what a proxy said; the original (and its chain of
            # urllib3 errors) is not kept: raised outside this block, so not as __context__.
            sentence = _no_answer_sentence(exc, request, kwargs["timeout"])
            failure = _masked_copy(exc, sentence, self._redactor)
        if failure is not None:
            raise failure
        redact = self._redactor.redact
        response._content = self._redactor.redact_bytes(content)
        response.headers = CaseInsensitiveDict(
            {name: redact(value) for name, value in response.headers.items()}
        )
        response.reason = redact(response.reason or "")
        response.url = redact(response.url or "")
        masked = request.copy()
        masked.headers = CaseInsensitiveDict(
            {name: redact(str(value)) for name, value in request.headers.items()}
        )
        response.request = masked
        if response.is_redirect:
            response.close()
            raise RedirectRefusedError(
                f"the server answered HTTP {response.status_code} with a redirect; not "
                "followed, the request carries the API keys"
            )
        return response


def harden_client(client: C, timeout: float, redactor: Redactor | None = None) -> C:
    """Give an alpaca-py client a request timeout, switch off its own retry, and mask every
    answer with `redactor` (the client's key pair) at the transport.

    alpaca-py exposes neither: its requests Session gets no timeout, and TradingClient /
    StockHistoricalDataClient do not pass retry settings through. Both live in private
    attributes, so check they are still there rather than silently not applying (the
    version is pinned; a change shows up here, loudly).
    """
    if not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    session = getattr(client, "_session", None)
    if not isinstance(session, requests.Session) or not all(
        hasattr(client, name) for name in ("_retry", "_retry_codes")
    ):
        raise RuntimeError(
            "alpaca-py's RESTClient no longer has _session/_retry/_retry_codes; the "
            "timeout and single-retry-policy guarantees cannot be applied to this version"
        )
    adapter = _GuardedAdapter(timeout, redactor if redactor is not None else Redactor())
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # With _retry == 0, RESTClient raises APIError on the first 429/504 instead of
    # sleeping 3 s and resending (which, for POST /v2/orders, could place a second order).
    client._retry = 0  # type: ignore[attr-defined]
    client._retry_codes = []  # type: ignore[attr-defined]
    return client


def close_client(client: RESTClient | None) -> None:
    session = getattr(client, "_session", None)
    if isinstance(session, requests.Session):
        session.close()


# ------------------------------------------------------------------------ error mapping


@dataclass(frozen=True)
class ErrorBody:
    """What an HTTP error response said, read without trusting its shape."""

    status: int | None
    code: int | None
    message: str
    retry_after: float | None


def _clip(text: str, redactor: Redactor | None = None) -> str:
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
        message = raw_message if isinstance(raw_message, str) else _clip(text, redactor)
    elif text.strip():
        stripped = re.sub(r"<[^>]*>", " ", text)
        message = f"non-JSON body: {_clip(stripped, redactor)}"
    else:
        message = "empty body"
    return ErrorBody(
        status=status,
        code=code,
        message=_clip(message, redactor),
        retry_after=parse_retry_after(headers.get("Retry-After")),
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
    | 429                 | RateLimitedError(retry_after=Retry-After)         retried   |
    | 5xx                 | BrokerUnavailableError(retry_after=Retry-After)   retried   |
    | 401                 | AuthError                          refresh once, then stop  |
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
    detail = _clip(" ".join(str(exc).split()))
    if isinstance(exc, RedirectRefusedError):
        # An answer, just not one to act on: trying again would be answered the same way.
        return BrokerError(f"{endpoint}: {detail}")
    if kind == "read":
        return BrokerUnavailableError(f"{endpoint}: no answer from the broker ({detail})")
    return OutcomeUnknownError(
        f"{endpoint}: the request may have reached the broker but no answer arrived ({detail})"
    )


def invoke(endpoint: str, call: Callable[[], T], kind: CallKind, redactor: Redactor) -> T:
    """Run one HTTP call and turn any failure into a project error (never retries).

    The error is built from the (already masked) answer and masked once more; alpaca-py's
    or requests' exception is neither its cause nor its context (raised outside the
    handler), so no chain a framework stores can lead back to the raw answer or request.
    """
    try:
        body = call()
    except requests.exceptions.JSONDecodeError:
        # A 2xx whose body is not JSON; this subclass of RequestException must come first.
        error: BrokerError = MalformedResponseError(
            f"{endpoint}: the broker answered with a body that is not JSON"
        )
    except APIError as exc:
        error = translate_api_error(exc, endpoint, kind, redactor)
    except requests.RequestException as exc:
        error = translate_transport_error(exc, endpoint, kind)
    else:
        # Parsed JSON: an escape style the transport did not know is undone by now.
        return redactor.redact_value(body)  # type: ignore[return-value]
    error.args = tuple(redactor.redact_value(arg) for arg in error.args)
    raise error


# ----------------------------------------------------------------------- body mapping


def expect_object(body: object, endpoint: str) -> dict[str, Any]:
    """A JSON object that is not an error body under a 2xx status (X4)."""
    if isinstance(body, dict):
        if "message" in body and ("code" in body or len(body) <= 2):
            raise MalformedResponseError(
                f"{endpoint}: the broker answered with success status but an error body: "
                f"{_clip(str(body.get('message')))}"
                + (f" (code {body.get('code')})" if "code" in body else "")
            )
        return body
    raise MalformedResponseError(f"{endpoint}: expected a JSON object, got {type(body).__name__}")


def expect_list(body: object, endpoint: str) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        expect_object(body, endpoint)  # raises on an error body with its message
    raise MalformedResponseError(f"{endpoint}: expected a JSON array, got {type(body).__name__}")


def pick(
    body: Mapping[str, Any],
    endpoint: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> dict[str, Any]:
    """The named fields of a response; a missing required one is a schema change (B3)."""
    missing = [name for name in required if name not in body]
    if missing:
        raise MalformedResponseError(f"{endpoint}: response lacks field(s) {', '.join(missing)}")
    picked = {name: body[name] for name in required}
    picked.update({name: body[name] for name in optional if name in body})
    return picked


def validate(model: type[M], fields: Mapping[str, Any], endpoint: str) -> M:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:5]
        )
        raise MalformedResponseError(
            f"{endpoint}: response does not validate as {model.__name__}: {problems}"
        ) from exc


def _flag(body: Mapping[str, Any], name: str, endpoint: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise MalformedResponseError(f"{endpoint}: field {name} is not a boolean")
    return value


def account_from_alpaca(body: object, endpoint: str) -> Account:
    data = expect_object(body, endpoint)
    fields = pick(data, endpoint, ("account_number", "currency", "cash", "equity", "buying_power"))
    # Alpaca spreads "cannot trade" over several flags and a status; any of them blocks.
    blocked = any(
        _flag(data, name, endpoint)
        for name in ("trading_blocked", "account_blocked", "trade_suspended_by_user")
    )
    status = data.get("status")
    if status is not None and str(status).upper() != "ACTIVE":
        blocked = True
    return validate(Account, {**fields, "trading_blocked": blocked}, endpoint)


def _picked_model(
    model: type[M],
    body: object,
    endpoint: str,
    required: Iterable[str],
    optional: Iterable[str] = (),
) -> M:
    """A response object's named fields, validated as `model` (all checks above apply)."""
    data = expect_object(body, endpoint)
    return validate(model, pick(data, endpoint, required, optional), endpoint)


def clock_from_alpaca(body: object, endpoint: str) -> Clock:
    return _picked_model(Clock, body, endpoint, ("timestamp", "is_open", "next_open", "next_close"))


def asset_from_alpaca(body: object, endpoint: str) -> Asset:
    return _picked_model(
        Asset, body, endpoint, ("symbol", "tradable", "fractionable", "status"), ("shortable",)
    )


def position_from_alpaca(body: object, endpoint: str) -> Position:
    return _picked_model(
        Position, body, endpoint, ("symbol", "qty", "avg_entry_price", "current_price")
    )


def order_from_alpaca(body: object, endpoint: str) -> Order:
    data = expect_object(body, endpoint)
    fields = pick(
        data,
        endpoint,
        ("id", "client_order_id", "symbol", "side", "qty", "filled_qty", "status", "submitted_at"),
        ("filled_avg_price", "updated_at"),
    )
    fields.setdefault("filled_avg_price", None)
    return validate(Order, fields, endpoint)


def check_symbol(symbol: str) -> str:
    # The symbol goes into a URL path: refuse anything that could change the path.
    if not _SYMBOL.match(symbol):
        raise ValueError(f"not a valid symbol: {symbol!r}")
    return symbol


# ---------------------------------------------------------------------------- adapter


@dataclass
class _SubmitState:
    """What one submit_order call knows about whether its order may exist at the broker."""

    maybe_sent: bool = False  # a POST may have landed and no lookup has ruled it out since
    ever_unknown: bool = False  # some POST of this call had an unknown outcome


def _as_is(body: Any) -> Any:
    return body


class AlpacaConnection(Generic[C]):
    """One alpaca-py client with the project's guarantees: timeout, one retry policy,
    error mapping, and one credentials refresh after a refusal (B4, X6).

    The client is built on first use, not at construction, so that building resources
    (Dagster definitions) does no I/O and fetches no secret (A1).
    """

    def __init__(
        self,
        factory: Callable[[Credentials], C],
        credentials: CredentialsProvider,
        *,
        timeout: float,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        rng: random.Random | None,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self._factory = factory
        self._provider = credentials
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._client: C | None = None
        # Every pair this connection has sent stays masked: a key refused and replaced by a
        # refresh is still a credential.
        self._redactor = Redactor()

    def client(self, *, refresh: bool = False) -> C:
        if self._client is None or refresh:
            credentials = self._provider.get(refresh=refresh)
            self.close()
            self._redactor.register_pair(credentials.key_id, credentials.secret_key)
            self._client = harden_client(self._factory(credentials), self._timeout, self._redactor)
        return self._client

    def close(self) -> None:
        close_client(self._client)
        self._client = None

    def once(self, endpoint: str, kind: CallKind, call: Callable[[C], T]) -> T:
        """One HTTP call, failures mapped, no retry."""
        client = self.client()
        return invoke(endpoint, lambda: call(client), kind, self._redactor)

    def retrying(self, attempt: Callable[[], T]) -> T:
        return call_with_retry(
            attempt, self._retry, sleep=self._sleep, rng=self._rng, on_retry=_log_retry
        )

    def with_auth(self, call: Callable[[], T]) -> T:
        """B4/X6: refused credentials -> fetch fresh ones, rebuild the client, try once more."""
        try:
            return call()
        except MissingCredentialsError:
            raise  # nothing was refused: there is nothing to send
        except AuthError as first:
            log.warning("broker refused the credentials; refreshing them once: %s", first)
            self.client(refresh=True)
            try:
                return call()
            except AuthError as second:
                raise AuthError(
                    f"{second} -- still refused after refreshing the credentials once; "
                    "stopping (check the API key and secret)"
                ) from second

    def read_once(
        self, endpoint: str, call: Callable[[C], Any], parse: Callable[[Any], T] = _as_is
    ) -> T:
        """One read and its answer parsed; an unusable answer is a `MalformedReadError`."""
        return parse_read(self.once(endpoint, "read", call), parse)

    def read(
        self, endpoint: str, call: Callable[[C], Any], parse: Callable[[Any], T] = _as_is
    ) -> T:
        """A read and the parsing of its answer, retried together under the policy (an
        unusable answer included), with one credentials refresh."""
        return self.with_auth(lambda: self.retrying(lambda: self.read_once(endpoint, call, parse)))


def parse_read(body: object, parse: Callable[[Any], T]) -> T:
    """`parse(body)`, a `MalformedResponseError` turned into the retryable `MalformedReadError`."""
    try:
        return parse(body)
    except MalformedReadError:
        raise
    except MalformedResponseError as exc:
        error = MalformedReadError(*exc.args)
    raise error  # outside the handler: the message is the whole story


def _log_retry(attempt: int, error: BaseException, wait: float) -> None:
    log.warning("broker call failed (attempt %d), retrying in %.2f s: %s", attempt, wait, error)


class AlpacaService(Generic[C]):
    """What the trading adapter and the market data source share: one validated endpoint and
    one `AlpacaConnection` to it. Its client is `client_type` (an alpaca-py client class, or
    a partial of one) built with the provider's pair, `raw_data=True` (the project's models
    are the schema) and the endpoint as `url_override`."""

    def __init__(
        self,
        url: str,
        client_type: Callable[..., C],
        credentials: CredentialsProvider,
        *,
        timeout: float,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        rng: random.Random | None,
    ) -> None:
        self._url = url
        self._conn: AlpacaConnection[C] = AlpacaConnection(
            lambda creds: client_type(
                api_key=creds.key_id,
                secret_key=creds.secret_key,
                raw_data=True,
                url_override=url,
            ),
            credentials,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            rng=rng,
        )

    @property
    def description(self) -> str:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description})"

    def close(self) -> None:
        """Release the HTTP connections (C8)."""
        self._conn.close()


class AlpacaBroker(AlpacaService[TradingClient]):
    """`Broker` over Alpaca's trading REST API (paper, live, or a compatible simulator)."""

    def __init__(
        self,
        credentials: CredentialsProvider,
        *,
        paper: bool,
        url: str | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 -- frozen, so sharing is safe
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        label: str = "",
        data_url: str | None = None,
    ) -> None:
        default = BaseURL.TRADING_PAPER.value if paper else BaseURL.TRADING_LIVE.value
        self._label = label
        api_url = validate_endpoint(url if url is not None else default)
        # Latest trades come from the broker's market data: Alpaca's data API, or, when the
        # trading endpoint is overridden (a simulator serves both), that same server.
        self._quotes_args: dict[str, Any] = {
            "credentials": credentials,
            "url": data_url if data_url is not None else (url or BaseURL.DATA.value),
            "timeout": timeout,
            "retry": retry,
            "sleep": sleep,
            "rng": rng,
        }
        self._quotes: AlpacaMarketData | None = None
        # url_override silently wins over paper= in alpaca-py; refuse the combination that
        # would trade real money while the log says PAPER (or the reverse).
        host = urlsplit(api_url).hostname
        if paper and host in _KNOWN_HOSTS_LIVE:
            raise ValueError(f"paper=True but {api_url} is Alpaca's LIVE endpoint")
        if not paper and host in _KNOWN_HOSTS_PAPER:
            raise ValueError(f"paper=False but {api_url} is Alpaca's PAPER endpoint")
        self._paper = paper
        super().__init__(
            api_url,
            functools.partial(TradingClient, paper=paper),
            credentials,
            timeout=timeout,
            retry=retry,
            sleep=sleep,
            rng=rng,
        )

    @property
    def description(self) -> str:
        """Which account kind and endpoint, e.g. for the run log; `label` says what is behind
        the endpoint when it is not Alpaca itself (the demo's embedded simulator)."""
        where = f"Alpaca {'PAPER' if self._paper else 'LIVE'} API at {self._url}"
        return f"{self._label}: {where}" if self._label else where

    def __enter__(self) -> "AlpacaBroker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(
        self, endpoint: str, call: Callable[[TradingClient], object], parse: Callable[[Any], T]
    ) -> T:
        return self._conn.read(endpoint, call, parse)

    # -- reads ----------------------------------------------------------------------------

    def get_clock(self) -> Clock:
        endpoint = "GET /v2/clock"
        return self._read(
            endpoint, lambda c: c.get_clock(), lambda b: clock_from_alpaca(b, endpoint)
        )

    def get_account(self) -> Account:
        endpoint = "GET /v2/account"
        return self._read(
            endpoint, lambda c: c.get_account(), lambda b: account_from_alpaca(b, endpoint)
        )

    def get_positions(self) -> dict[str, Position]:
        endpoint = "GET /v2/positions"

        def parse(body: object) -> dict[str, Position]:
            positions: dict[str, Position] = {}
            for item in expect_list(body, endpoint):
                position = position_from_alpaca(item, endpoint)
                if position.symbol in positions:
                    raise MalformedResponseError(f"{endpoint}: {position.symbol} listed twice")
                positions[position.symbol] = position
            return positions

        return self._read(endpoint, lambda c: c.get_all_positions(), parse)

    def get_asset(self, symbol: str) -> Asset:
        endpoint = f"GET /v2/assets/{check_symbol(symbol)}"

        def parse(body: object) -> Asset:
            asset = asset_from_alpaca(body, endpoint)
            if asset.symbol != symbol:
                raise MalformedResponseError(f"{endpoint}: answered for {asset.symbol!r}")
            return asset

        return self._read(endpoint, lambda c: c.get_asset(symbol), parse)

    def latest_trades(self, symbols: tuple[str, ...]) -> dict[str, Decimal]:
        """The broker's latest trade price per symbol it quotes (GET /v2/stocks/trades/latest),
        read with the same credentials, timeout and retry policy as the trading calls."""
        if self._quotes is None:
            # Imported here: the market data source builds on this module.
            from tecl_pipeline.adapters.alpaca.market_data import AlpacaMarketData

            self._quotes = AlpacaMarketData(**self._quotes_args)
        return self._quotes.quoted_prices(symbols)

    def close(self) -> None:
        if self._quotes is not None:
            self._quotes.close()
            self._quotes = None
        super().close()

    def get_order(self, order_id: str) -> Order:
        endpoint = f"GET /v2/orders/{order_id}"

        def parse(body: object) -> Order:
            order = order_from_alpaca(body, endpoint)
            if order.id.lower() != order_id.lower():
                raise MalformedResponseError(f"{endpoint}: answered with order {order.id!r}")
            return order

        # alpaca-py validates the id as a UUID (ValueError otherwise) before it builds the path.
        return self._read(endpoint, lambda c: c.get_order_by_id(order_id), parse)

    def _lookup_once(self, client_order_id: str) -> Order | None:
        """One lookup by client order id, no retry; None when the broker has no such order."""
        endpoint = f"GET /v2/orders:by_client_order_id?client_order_id={client_order_id}"

        def parse(body: object) -> Order:
            order = order_from_alpaca(body, endpoint)
            if order.client_order_id != client_order_id:
                raise MalformedResponseError(
                    f"{endpoint}: answered with client order id {order.client_order_id!r}"
                )
            return order

        try:
            return self._conn.read_once(
                endpoint, lambda c: c.get_order_by_client_id(client_order_id), parse
            )
        except NotFoundError:
            return None

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return self._conn.with_auth(
            lambda: self._conn.retrying(lambda: self._lookup_once(client_order_id))
        )

    def list_orders(self, client_order_id_prefix: str = "") -> list[Order]:
        """Every order whose client order id starts with the prefix, oldest first.

        Alpaca pages GET /v2/orders by time only (limit <= 500, `until` exclusive, newest
        first). Each next page asks until just after the oldest time seen, so orders that
        share that timestamp are not skipped; the overlap is removed by order id. A full
        page of one single timestamp cannot be paged past without possibly skipping orders:
        that is an error, not a silently short list.
        """
        endpoint = "GET /v2/orders"
        seen: dict[str, Order | None] = {}
        until: datetime | None = None

        def parse(body: object) -> list[tuple[str, datetime, Order | None]]:
            # Only our orders are validated: a foreign order (a notional one, say, with no
            # qty) must not make our own history unreadable.
            page = []
            for item in expect_list(body, endpoint):
                data = expect_object(item, endpoint)
                fields = pick(data, endpoint, ("id", "client_order_id", "submitted_at"))
                if not isinstance(fields["id"], str) or not isinstance(
                    fields["client_order_id"], str
                ):
                    raise MalformedResponseError(f"{endpoint}: order id is not a string")
                stamp = _timestamp(fields["submitted_at"], endpoint)
                ours = fields["client_order_id"].startswith(client_order_id_prefix)
                page.append(
                    (fields["id"], stamp, order_from_alpaca(data, endpoint) if ours else None)
                )
            return page

        for _ in range(MAX_ORDER_PAGES):
            limit = ORDERS_PAGE_LIMIT
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL, limit=limit, direction=Sort.DESC, until=until
            )
            page = self._read(endpoint, lambda c, r=request: c.get_orders(r), parse)
            stamps = [stamp for _, stamp, _ in page]
            for order_id, _, order in page:
                seen.setdefault(order_id, order)
            if len(page) < limit:
                break
            if min(stamps) == max(stamps):
                raise BrokerError(
                    f"{endpoint}: {limit} orders share submitted_at {stamps[0].isoformat()}; "
                    "paging by time cannot list every order"
                )
            until = min(stamps) + timedelta(microseconds=1)
        else:
            raise MalformedResponseError(
                f"{endpoint}: still paging after {MAX_ORDER_PAGES} pages of {ORDERS_PAGE_LIMIT}"
            )
        orders = [order for order in seen.values() if order is not None]
        return sorted(orders, key=lambda o: (o.submitted_at, o.client_order_id))

    # -- writes ---------------------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> Order:
        """POST once; when the answer is lost, find out whether the order landed (B5).

        After a timeout, dropped connection, 5xx or garbled answer, the order is looked up
        by its client order id before anything else: found -> that is the answer; not
        found -> resent with the same id, which the broker refuses if the first did land
        (then the order is looked up and returned). A 429 was not processed: wait, resend.
        Everything is bounded by the retry policy; if the outcome is still unknown at the
        end, OutcomeUnknownError says so. A new client order id is never made up here.
        """
        state = _SubmitState()
        endpoint = "POST /v2/orders"
        try:
            return self._conn.with_auth(
                lambda: self._conn.retrying(lambda: self._submit_attempt(request, state))
            )
        except (RetryableBrokerError, MalformedResponseError) as exc:
            # Still unsure whether an earlier POST landed: that, not the last symptom, is
            # what the caller must act on.
            if state.maybe_sent:
                raise OutcomeUnknownError(
                    f"{endpoint} {request.client_order_id}: the order may or may not exist at "
                    f"the broker; gave up finding out ({exc}). Look it up by client order id "
                    "before sending it again"
                ) from exc
            raise

    def _submit_attempt(self, request: OrderRequest, state: _SubmitState) -> Order:
        endpoint = "POST /v2/orders"
        if state.maybe_sent:
            found = self._lookup_once(request.client_order_id)
            if found is not None:
                log.info("order %s found after a lost answer", request.client_order_id)
                return self._check_echo(found, request, endpoint)
            state.maybe_sent = False  # ruled out: sending again cannot duplicate it
        payload = {
            "symbol": request.symbol,
            # A decimal string, as Alpaca documents for qty: never a binary float (C3).
            "qty": str(request.qty),
            "side": request.side.value,
            "type": request.type,
            "time_in_force": request.time_in_force,
            "client_order_id": request.client_order_id,
        }
        try:
            body = self._conn.once(endpoint, "submit", lambda c: c.post("/orders", payload))
            order = order_from_alpaca(body, endpoint)
        except DuplicateClientOrderIdError:
            if state.ever_unknown:
                # An earlier POST of this very call landed after all.
                found = self._lookup_once(request.client_order_id)
                if found is not None:
                    return self._check_echo(found, request, endpoint)
            raise
        except (OutcomeUnknownError, BrokerUnavailableError) as exc:
            state.maybe_sent = state.ever_unknown = True
            if isinstance(exc, RetryableBrokerError):
                raise
            # Retryable for the policy: the next attempt starts with the lookup.
            raise BrokerUnavailableError(str(exc)) from exc
        except MalformedResponseError:
            # The broker answered, but not readably: the order may exist behind it.
            state.maybe_sent = state.ever_unknown = True
            found = self._lookup_once(request.client_order_id)
            state.maybe_sent = False
            if found is not None:
                return self._check_echo(found, request, endpoint)
            raise
        return self._check_echo(order, request, endpoint)

    @staticmethod
    def _check_echo(order: Order, request: OrderRequest, endpoint: str) -> Order:
        if (order.client_order_id, order.symbol, order.side) != (
            request.client_order_id,
            request.symbol,
            request.side,
        ) or order.qty != request.qty:
            raise MalformedResponseError(
                f"{endpoint}: the broker's order {order.client_order_id} ({order.side} "
                f"{order.qty} {order.symbol}) does not match the request "
                f"{request.client_order_id} ({request.side} {request.qty} {request.symbol})"
            )
        return order

    def cancel_order(self, order_id: str) -> None:
        """Cancel; an order that can no longer be canceled (filled, already canceled) is
        not an error: the caller reads the order for its final state."""
        endpoint = f"DELETE /v2/orders/{order_id}"
        state = _SubmitState()

        def attempt() -> None:
            try:
                self._conn.once(endpoint, "cancel", lambda c: c.cancel_order_by_id(order_id))
            except OrderRejectedError as exc:
                log.info("order %s not cancelable (already final?): %s", order_id, exc)
            except OutcomeUnknownError as exc:
                # Cancel is idempotent: asking again is safe.
                state.maybe_sent = True
                raise BrokerUnavailableError(str(exc)) from exc
            except BrokerUnavailableError:
                state.maybe_sent = True
                raise

        try:
            self._conn.with_auth(lambda: self._conn.retrying(attempt))
        except RetryableBrokerError as exc:
            if state.maybe_sent:
                raise OutcomeUnknownError(
                    f"{endpoint}: the cancel may or may not have happened ({exc})"
                ) from exc
            raise


def _timestamp(value: object, endpoint: str) -> datetime:
    try:
        return _AWARE_DATETIME.validate_python(value)
    except ValidationError as exc:
        raise MalformedResponseError(
            f"{endpoint}: submitted_at {value!r} is not a timestamp"
        ) from exc
