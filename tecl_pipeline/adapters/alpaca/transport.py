"""The HTTP side of the Alpaca adapter: what alpaca-py's `RESTClient` does not do.

- every request has a timeout (alpaca-py sets none, so a hung server hangs the run, B2);
- alpaca-py's own fixed-wait 429/504 retry is off, and urllib3's too; `common.retry` is
  the one policy (C6), applied here, one attempt at a time;
- the key id and the secret, in every encoding a server may echo them back, are masked at
  the transport, in bodies, headers, status lines and URLs, before alpaca-py or the adapter
  builds anything from an answer; redirects are not followed (the request carries the
  keys); the project's errors are built from that masked text and do not chain alpaca-py's
  or requests' exceptions (S2);
- refused credentials are refreshed once, then the call fails with `AuthError` (B4, X6);
- a read whose answer cannot be used is asked again under the retry policy (B3);
- the endpoint is one credentials may be sent to (S5), and of the account kind asked for.
"""

import logging
import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

import requests
from alpaca.common.enums import BaseURL
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from tecl_pipeline.adapters.alpaca.errors import (
    CallKind,
    RedirectRefusedError,
    translate_api_error,
    translate_transport_error,
)
from tecl_pipeline.common.endpoints import validate_endpoint
from tecl_pipeline.common.retry import RetryPolicy, call_with_retry
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.trading.credentials import (
    Credentials,
    CredentialsProvider,
    MissingCredentialsError,
)
from tecl_pipeline.trading.errors import (
    AuthError,
    BrokerError,
    MalformedReadError,
    MalformedResponseError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C", bound=RESTClient)

_KNOWN_HOSTS_PAPER = frozenset({urlsplit(BaseURL.TRADING_PAPER.value).hostname})
_KNOWN_HOSTS_LIVE = frozenset({urlsplit(BaseURL.TRADING_LIVE.value).hostname})


def trading_endpoint(url: str | None, *, paper: bool) -> str:
    """The trading API's base URL: Alpaca's paper or live endpoint, or `url` when it is safe
    to send credentials to (S5) and not Alpaca's endpoint of the other account kind."""
    default = BaseURL.TRADING_PAPER.value if paper else BaseURL.TRADING_LIVE.value
    api_url = validate_endpoint(url if url is not None else default)
    # url_override silently wins over paper= in alpaca-py; refuse the combination that
    # would trade real money while the log says PAPER (or the reverse).
    host = urlsplit(api_url).hostname
    if paper and host in _KNOWN_HOSTS_LIVE:
        raise ValueError(f"paper=True but {api_url} is Alpaca's LIVE endpoint")
    if not paper and host in _KNOWN_HOSTS_PAPER:
        raise ValueError(f"paper=False but {api_url} is Alpaca's PAPER endpoint")
    return api_url


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

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        answer = self._answer_or_failure(request, *args, **kwargs)
        if isinstance(answer, requests.RequestException):
            # Raised here, outside the handler that made it: the original (and its chain of
            # urllib3 errors) is not kept, not even as __context__.
            raise answer
        response, content = answer
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

    def _answer_or_failure(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> tuple[requests.Response, bytes] | requests.RequestException:
        """The response and its whole body, or the failure as a masked sentence naming the
        server (its text can hold the URL or what a proxy said)."""
        try:
            response = super().send(request, *args, **kwargs)
            return response, response.content  # read here, so a body cut short fails here
        except requests.RequestException as exc:
            sentence = _no_answer_sentence(exc, request, kwargs["timeout"])
            return _masked_copy(exc, sentence, self._redactor)


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
    client._retry = 0
    client._retry_codes = []
    return client


def close_client(client: RESTClient | None) -> None:
    session = getattr(client, "_session", None)
    if isinstance(session, requests.Session):
        session.close()


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
        # Parsed JSON: an escape style the transport did not know is undone by now. Masking
        # keeps a JSON value's shape (objects, arrays, strings), so it is still the call's T.
        return cast(T, redactor.redact_value(body))
    error.args = tuple(redactor.redact_value(arg) for arg in error.args)
    raise error


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
