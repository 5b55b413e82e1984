"""The Alpaca trading adapter on answers the simulator never gives: the rest of the error
table (403s that are not about the key, statuses nobody expects, empty and non-JSON bodies),
bodies of the wrong shape or for the wrong object, endless paging, and a cancel whose
outcome is unknown (B1-B5, X4).

The real alpaca-py TradingClient talks to a loopback server with scripted answers
(canned_http). Sleeping is recorded, not slept; jitter comes from the test's printed seed.
"""

import base64
import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import quote, quote_plus

import pytest
import requests
from alpaca.common.exceptions import APIError

from tecl_pipeline.adapters.alpaca import broker as alpaca
from tecl_pipeline.adapters.alpaca.broker import AlpacaBroker
from tecl_pipeline.adapters.alpaca.errors import parse_retry_after
from tecl_pipeline.adapters.alpaca.transport import harden_client
from tecl_pipeline.common.retry import RetryPolicy
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.trading.credentials import Credentials, MissingCredentialsError
from tecl_pipeline.trading.errors import (
    AuthError,
    BrokerError,
    BrokerUnavailableError,
    MalformedResponseError,
    OrderRejectedError,
    OutcomeUnknownError,
    RateLimitedError,
)
from tecl_pipeline.trading.models import OrderRequest, OrderSide
from tecl_pipeline_tests.adapters.alpaca import canned_http
from tecl_pipeline_tests.adapters.alpaca.adapter_helpers import CountingProvider, sim_credentials
from tecl_pipeline_tests.adapters.alpaca.canned_http import Canned

canned = canned_http.canned

ORDER_ID = "0b5e7f0c-1c1d-4c59-9a48-0ad2f2b1e6a1"
OTHER_ID = "6f1c2b7a-98a4-4a3e-bd0e-5d2f9c1e4b70"
ACCOUNT = {
    "account_number": "PA1",
    "currency": "USD",
    "cash": "1000",
    "equity": "1000",
    "buying_power": "1000",
    "status": "ACTIVE",
}


def order(client_order_id: str = "c1", **changes) -> dict:
    body = {
        "id": ORDER_ID,
        "client_order_id": client_order_id,
        "symbol": "TECL",
        "side": "buy",
        "qty": "1",
        "filled_qty": "0",
        "filled_avg_price": None,
        "status": "new",
        "submitted_at": "2026-11-24T20:45:00Z",
    }
    return {**body, **changes}


def position(symbol: str) -> dict:
    return {"symbol": symbol, "qty": "2", "avg_entry_price": "10", "current_price": "11"}


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def make(canned, waits, seed):
    """An adapter against the scripted server: short timeout, recorded waits, seeded jitter."""

    def build(attempts: int = 1, provider=None) -> AlpacaBroker:
        return AlpacaBroker(
            provider or sim_credentials(),
            paper=True,
            url=canned.url,
            timeout=2.0,
            retry=RetryPolicy(max_attempts=attempts, base_delay=0.5, deadline=60.0),
            sleep=waits.append,
            rng=random.Random(seed),
        )

    return build


# -- the error table ---------------------------------------------------------------------


def test_a_403_about_the_key_refreshes_once_then_stops(canned, make):
    """B4: "forbidden" reads as refused credentials: one refresh, one more try, AuthError."""
    canned.answer("GET", "/v2/account", Canned({"message": "forbidden."}, 403))
    provider = CountingProvider(sim_credentials())
    with pytest.raises(AuthError, match="still refused after refreshing"):
        make(provider=provider).get_account()
    assert provider.refreshes == 1
    assert len(canned.requests("GET", "/v2/account")) == 2


def test_a_403_that_is_not_about_the_key_is_a_plain_error_on_reads(canned, make):
    """B1: a policy refusal is neither a key problem (no refresh) nor retried."""
    canned.answer("GET", "/v2/account", Canned({"message": "request denied by policy"}, 403))
    provider = CountingProvider(sim_credentials())
    with pytest.raises(BrokerError, match="HTTP 403: request denied by policy") as caught:
        make(attempts=3, provider=provider).get_account()
    assert type(caught.value) is BrokerError
    assert provider.refreshes == 0 and len(canned.requests("GET", "/v2/account")) == 1


def test_a_403_on_a_submit_is_a_rejected_order(canned, make):
    canned.answer("POST", "/v2/orders", Canned({"message": "denied by policy", "code": 7}, 403))
    request = OrderRequest(symbol="TECL", side=OrderSide.BUY, qty=Decimal(1), client_order_id="c1")
    with pytest.raises(OrderRejectedError, match="denied by policy") as caught:
        make().submit_order(request)
    assert caught.value.code == 7
    assert len(canned.requests("POST", "/v2/orders")) == 1


@pytest.mark.parametrize("status", [400, 409, 418])
def test_unexpected_statuses_on_reads_are_plain_errors_naming_them(canned, make, status):
    canned.answer("GET", "/v2/clock", Canned({"message": "nope"}, status))
    with pytest.raises(BrokerError, match=f"GET /v2/clock: HTTP {status}: nope") as caught:
        make(attempts=3).get_clock()
    assert type(caught.value) is BrokerError
    assert len(canned.requests("GET", "/v2/clock")) == 1


def test_an_empty_5xx_body_is_said_to_be_empty(canned, make):
    canned.answer("GET", "/v2/clock", Canned(status=503, raw=""))
    with pytest.raises(BrokerUnavailableError, match="HTTP 503: empty body"):
        make().get_clock()


@pytest.mark.parametrize(
    ("raw", "match"),
    [("<html>OK</html>", "body that is not JSON"), ("", "expected a JSON object, got NoneType")],
)
def test_a_2xx_that_is_not_json_is_malformed_never_success(canned, make, raw, match):
    """X4: a success status is not success unless the body is the JSON promised."""
    canned.answer("GET", "/v2/clock", Canned(raw=raw))
    with pytest.raises(MalformedResponseError, match=match):
        make().get_clock()


def test_retry_after_as_an_http_date_without_zone_is_read_as_utc():
    now = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
    assert parse_retry_after("Tue, 24 Nov 2026 20:45:30 -0000", now=now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 20:44:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None


# -- bodies of the wrong shape -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([], "expected a JSON object, got list"),
        ({**ACCOUNT, "cash": "lots"}, "does not validate as Account: cash"),
        ({**ACCOUNT, "trading_blocked": "no"}, "field trading_blocked is not a boolean"),
    ],
)
def test_an_account_body_of_the_wrong_shape_is_malformed(canned, make, body, match):
    canned.answer("GET", "/v2/account", Canned(body))
    with pytest.raises(MalformedResponseError, match=match):
        make().get_account()


@pytest.mark.parametrize(
    ("changes", "blocked"),
    [
        ({"trading_blocked": None}, False),
        ({"status": "ACCOUNT_CLOSED"}, True),
        ({"status": "active"}, False),
        ({"account_blocked": True}, True),
    ],
)
def test_an_account_is_blocked_by_any_flag_or_a_status_other_than_active(
    canned, make, changes, blocked
):
    """B6: a null flag is not a block; any status but ACTIVE is."""
    canned.answer("GET", "/v2/account", Canned({**ACCOUNT, **changes}))
    assert make().get_account().trading_blocked is blocked


def test_positions_must_be_a_list_of_distinct_symbols(canned, make):
    broker = make()
    canned.answer("GET", "/v2/positions", Canned({"message": "maintenance", "code": 1}))
    with pytest.raises(MalformedResponseError, match="error body: maintenance"):
        broker.get_positions()
    canned.answer("GET", "/v2/positions", Canned({"positions": []}))
    with pytest.raises(MalformedResponseError, match="expected a JSON array, got dict"):
        broker.get_positions()
    canned.answer("GET", "/v2/positions", Canned([position("TECL"), position("TECL")]))
    with pytest.raises(MalformedResponseError, match="TECL listed twice"):
        broker.get_positions()
    canned.answer("GET", "/v2/positions", Canned([position("TECL"), position("BIL")]))
    held = broker.get_positions()
    assert set(held) == {"TECL", "BIL"} and held["TECL"].market_value == Decimal("22.00")


# -- answers about the wrong object ----------------------------------------------------------


def test_an_asset_answered_for_another_symbol_is_malformed(canned, make):
    asset = {"symbol": "TECS", "tradable": True, "fractionable": True, "status": "active"}
    canned.answer("GET", "/v2/assets/TECL", Canned(asset))
    with pytest.raises(MalformedResponseError, match="answered for 'TECS'"):
        make().get_asset("TECL")


def test_a_symbol_that_could_change_the_path_is_refused_before_any_request(canned, make):
    with pytest.raises(ValueError, match="not a valid symbol"):
        make().get_asset("../account")
    assert canned.seen == []


def test_an_order_answered_for_another_id_is_malformed(canned, make):
    canned.answer("GET", f"/v2/orders/{ORDER_ID}", Canned(order(id=OTHER_ID)))
    with pytest.raises(MalformedResponseError, match="answered with order"):
        make().get_order(ORDER_ID)


def test_a_lookup_answered_with_another_client_order_id_is_malformed(canned, make):
    canned.answer("GET", "/v2/orders:by_client_order_id", Canned(order("someone-else")))
    with pytest.raises(MalformedResponseError, match="answered with client order id"):
        make().get_order_by_client_id("c1")


def test_a_submit_echoing_another_quantity_is_malformed(canned, make):
    """B3: the broker's order must be the one asked for; a mismatch is never accepted."""
    canned.answer("POST", "/v2/orders", Canned(order(qty="10")))
    request = OrderRequest(symbol="TECL", side=OrderSide.BUY, qty=Decimal(1), client_order_id="c1")
    with pytest.raises(MalformedResponseError, match="does not match the request"):
        make(attempts=3).submit_order(request)
    assert len(canned.requests("POST", "/v2/orders")) == 1


@pytest.mark.parametrize("limit", ["700.01", None], ids=["another-limit", "no-limit"])
def test_a_submit_echoing_another_limit_price_is_malformed(canned, make, limit):
    """B3, B7: a buy sent with a limit must come back with that limit; an order the broker
    would fill at another price (or at the market) is never taken for the one asked for."""
    canned.answer("POST", "/v2/orders", Canned(order(type="limit", limit_price=limit)))
    request = OrderRequest(
        symbol="TECL",
        side=OrderSide.BUY,
        qty=Decimal(1),
        client_order_id="c1",
        limit_price=Decimal("685.42"),
    )
    with pytest.raises(MalformedResponseError, match=r"does not match the request.*limit 685.42"):
        make(attempts=3).submit_order(request)
    [sent] = canned.requests("POST", "/v2/orders")
    assert sent.body["limit_price"] == "685.42"


# -- listing orders ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "match"),
    [
        (
            {"id": 5, "client_order_id": "c1", "submitted_at": "2026-11-24T20:45:00Z"},
            "not a string",
        ),
        ({"id": "a", "client_order_id": "c1", "submitted_at": "yesterday"}, "not a timestamp"),
        ({"id": "a", "client_order_id": "c1"}, "lacks field"),
    ],
)
def test_an_order_list_of_the_wrong_shape_is_malformed(canned, make, item, match):
    canned.answer("GET", "/v2/orders", Canned([item]))
    with pytest.raises(MalformedResponseError, match=match):
        make().list_orders("c")


def test_a_server_that_never_stops_paging_orders_is_cut_off(canned, make, monkeypatch):
    """B3: full pages with ever older times, forever: bounded, an error, not a short list."""
    monkeypatch.setattr(alpaca, "ORDERS_PAGE_LIMIT", 2)
    monkeypatch.setattr(alpaca, "MAX_ORDER_PAGES", 3)
    counter = iter(range(1000))

    def full_page(seen) -> Canned:
        n = next(counter)
        return Canned(
            [
                order(
                    f"c{n}-{k}", id=f"id-{n}-{k}", submitted_at=f"2026-11-24T{20 - n:02d}:0{k}:00Z"
                )
                for k in range(2)
            ]
        )

    canned.answer("GET", "/v2/orders", full_page)
    with pytest.raises(MalformedResponseError, match="still paging after 3 pages"):
        make().list_orders("c")
    assert len(canned.requests("GET", "/v2/orders")) == 3


# -- cancel ------------------------------------------------------------------------------------


def test_a_cancel_that_keeps_failing_with_5xx_has_an_unknown_outcome(canned, make, waits):
    """B5: the DELETE may have landed behind each 503: the caller is told it is unknown."""
    canned.answer("DELETE", f"/v2/orders/{ORDER_ID}", Canned({"message": "busy"}, 503))
    with pytest.raises(OutcomeUnknownError, match="cancel may or may not have happened"):
        make(attempts=3).cancel_order(ORDER_ID)
    assert len(canned.requests("DELETE", f"/v2/orders/{ORDER_ID}")) == 3
    assert len(waits) == 2


def test_a_cancel_refused_with_429_did_not_happen(canned, make):
    """B1: a 429 was not processed: after the bounded retries it is a RateLimitedError, not
    an unknown outcome."""
    canned.answer(
        "DELETE",
        f"/v2/orders/{ORDER_ID}",
        Canned({"message": "slow down"}, 429, {"Retry-After": "0"}),
    )
    with pytest.raises(RateLimitedError):
        make(attempts=2).cancel_order(ORDER_ID)


# -- construction --------------------------------------------------------------------------


def test_missing_credentials_are_not_refreshed_and_nothing_is_sent(canned, make):
    """B4: with no credentials there is nothing to refresh: the error is the source's."""

    class Missing:
        def get(self, *, refresh: bool = False) -> Credentials:
            raise MissingCredentialsError("ALPACA_API_KEY_ID is not set")

    broker = make(provider=Missing())
    with pytest.raises(MissingCredentialsError, match="ALPACA_API_KEY_ID"):
        broker.get_clock()
    assert canned.seen == []
    assert broker.url == canned.url


def test_a_timeout_must_be_positive(canned):
    with pytest.raises(ValueError, match="timeout must be > 0"):
        AlpacaBroker(sim_credentials(), paper=True, url=canned.url, timeout=0)
    with pytest.raises(ValueError, match="timeout must be > 0"):
        # Not a client at all: the timeout is checked before anything else is looked at.
        harden_client(object(), 0)  # pyright: ignore[reportArgumentType]


def test_a_client_without_the_expected_internals_is_refused_loudly():
    """The timeout and single-retry guarantees must apply, or the adapter says so."""

    class Changed:
        _session = requests.Session()

    with pytest.raises(RuntimeError, match="no longer has _session/_retry/_retry_codes"):
        # A stand-in for an alpaca-py release whose client lost the internals: the type
        # says RESTClient, and this runtime check is what catches such a release.
        harden_client(Changed(), 1.0)  # pyright: ignore[reportArgumentType]


ALPACA_KEY = "PKALNUMCANARYKEY0042"
ALPACA_SECRET = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz1A2b3C4"


def _one_char_forms(ch: str) -> list[str]:
    """Ways a server may write one character (written out here, not by the product)."""
    code = ord(ch)
    forms = [ch, f"%{code:02x}", f"%{code:02X}", f"&#{code};", f"&#x{code:x};", f"&#X{code:X};"]
    forms += [f"\\u{code:04x}", f"\\u{code:04X}", f"\\\\u{code:04x}"]
    named = {"&": ["&amp;", "&AMP;"], "<": ["&lt;", "&LT;"], ">": ["&gt;"], "/": ["&sol;"]}
    return forms + named.get(ch, []) + (["+"] if ch == " " else [])


def _shifted_base64(value: str) -> list[str]:
    """`value` inside a larger base64 blob at each byte offset mod 3, both alphabets."""
    blobs = [value.encode(), b"x" + value.encode(), b"xy" + value.encode() + b"z"]
    return [
        encode(blob).decode()
        for blob in blobs
        for encode in (base64.b64encode, base64.urlsafe_b64encode)
    ]


def _echoes(value: str) -> dict[str, str]:
    escaped = json.dumps(value)[1:-1]
    return {
        "raw": value,
        "quote": quote(value, safe=""),
        "quote-lower": quote(value, safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
        "quote_plus": quote_plus(value),
        "pct-every-byte": "".join(
            f"%{b:02x}" if i % 2 else f"%{b:02X}" for i, b in enumerate(value.encode())
        ),
        "json-slash": escaped.replace("/", "\\/"),
        "json-twice": json.dumps(escaped)[1:-1],
        "json-unicode": "".join(f"\\u{ord(ch):04x}" for ch in value),
        "json-unicode-upper": "".join(f"\\u{ord(ch):04X}" for ch in value),
        "json-unicode-twice": "".join(f"\\\\u{ord(ch):04x}" for ch in value),
        "html-decimal": "".join(f"&#{ord(ch)};" for ch in value),
        "html-hex": "".join(f"&#X{ord(ch):X};" for ch in value),
        "html-escape": value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
        "base64": base64.b64encode(value.encode()).decode(),
        "base64-urlsafe-unpadded": base64.urlsafe_b64encode(value.encode()).decode().rstrip("="),
    }


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("PKEDGE4Q9", "wJal/rXUt+nF EMI~"),
        (ALPACA_KEY, ALPACA_SECRET),
        ("PKHTML0SYM", "Zq9/Xy+Ab3&Cd<Ef>"),
    ],
)
def test_the_redactor_masks_a_key_pair_in_every_encoding_a_server_may_echo(seed, key, secret):
    """S2: the key id and the secret, raw, percent-encoded (quote, quote_plus, every byte,
    either hex case), JSON-escaped (escaped slashes, unicode escapes, escaped twice),
    HTML-escaped (decimal, hex, named, any case), base64 of each and of the Basic-auth pair
    `key:secret`, standard and URL-safe, with or without padding; any per-character mix of
    those; base64 of a larger blob holding a value at any offset; the key id in any letter
    case. What is left around a mask never holds a run of the value."""
    rng = random.Random(seed)
    redactor = Redactor.for_credentials(key, secret)
    whole = [(name, form) for value in (key, secret) for name, form in _echoes(value).items()]
    whole += [("key-lower", key.lower()), ("key-swapcase", key.swapcase())]
    whole += [("basic", base64.b64encode(f"{key}:{secret}".encode()).decode())]
    for name, echo in whole:
        text = f"before {echo} after"
        assert redactor.redact(text) == "before *** after", (name, echo)
        assert redactor.redact_bytes(text.encode()) == b"before *** after", (name, echo)
    mixes = [
        ("mixed", "".join(rng.choice(_one_char_forms(ch)) for ch in value))
        for value in (key, secret, key.lower())
        for _ in range(20)
    ]
    shifted = [
        ("base64-shifted", blob)
        for value in (key, secret, key.lower())
        for blob in _shifted_base64(value)
    ]
    blob = json.dumps({"key_id": key, "secret_key": secret}).encode()
    shifted += [
        ("base64-json", encode(blob).decode())
        for encode in (base64.b64encode, base64.urlsafe_b64encode)
    ]
    for name, echo in mixes + shifted:
        text = f"before {echo} after"
        masked = redactor.redact(text)
        assert redactor.redact_bytes(text.encode()).decode() == masked, (name, echo)
        assert "***" in masked and not redactor.contains_secret(masked), (name, echo, masked)
        # A filler-dependent character may stay on each side of a base64 mask, never more
        # than one: the rest of what stays is the filler's.
        for value in (key, secret):
            for encoded in (value, *_shifted_base64(value)):
                for start in range(len(encoded) - 4):
                    assert encoded[start : start + 5] not in masked.replace("before ", ""), (
                        name,
                        echo,
                        masked,
                    )
    assert Redactor().redact_bytes(b"no secrets known") == b"no secrets known"
    assert redactor.redact("an order id, a price 101.50") == "an order id, a price 101.50"
    assert redactor.redact("PKAL &amp; %2F \\u0041 a=b") == "PKAL &amp; %2F \\u0041 a=b"


def test_an_error_message_is_masked_before_it_is_clipped(canned, make):
    """S2: a 403 whose JSON message, once decoded, holds the secret percent-encoded (the
    raw body JSON-escapes each "%", so only the decoded text shows it) right where the
    adapter clips long messages: the message is masked first, so no prefix of the encoded
    secret is left in the error."""
    creds = sim_credentials().get()
    encoded = "".join(f"\\u0025{b:02x}" for b in creds.secret_key.encode())
    message = "forbidden " + "x" * 280 + " " + encoded + " end"
    canned.answer(
        "GET",
        "/v2/account",
        Canned(raw='{"code": 40310000, "message": "' + message + '"}', status=403),
    )
    with pytest.raises(BrokerError) as caught:
        make().get_account()
    text = str(caught.value)
    assert "forbidden xxx" in text and "***" in text, text
    first_bytes = "".join(f"%{b:02x}" for b in creds.secret_key.encode()[:2])
    assert first_bytes not in text.lower(), text


def test_a_redirect_is_not_followed_so_the_keys_go_nowhere_else(canned, make):
    """S2: requests would resend the APCA key headers to any redirect target (it strips
    only Authorization). The adapter does not follow: the target never hears from it, the
    call fails at once naming the endpoint, and the error keeps no raw exception."""
    elsewhere = canned_http.CannedServer().start()
    try:
        elsewhere.answer("GET", "/v2/account", Canned(ACCOUNT))
        target = f"{elsewhere.url}/v2/account"
        canned.answer("GET", "/v2/account", Canned(status=307, headers={"Location": target}))
        with pytest.raises(
            BrokerError, match=r"GET /v2/account: .*redirect; not followed"
        ) as caught:
            make(attempts=3).get_account()
        assert elsewhere.seen == []
        assert len(canned.requests("GET", "/v2/account")) == 1
        assert caught.value.__cause__ is None and caught.value.__context__ is None
    finally:
        elsewhere.stop()


def test_an_echoing_error_answer_is_masked_before_any_error_is_built(canned, make):
    """S2: a 401 body, a header and the status line echo the key pair in several encodings;
    the adapter's error holds none of them, and chains no alpaca-py or requests exception
    that still would (cause, context)."""
    creds = sim_credentials().get()
    basic = base64.b64encode(f"{creds.key_id}:{creds.secret_key}".encode()).decode()
    echo = f"{creds.key_id} {quote(creds.secret_key, safe='')} {basic}"
    canned.answer(
        "GET",
        "/v2/account",
        Canned({"code": 40110000, "message": f"unauthorized: {echo}"}, 401, {"X-Echo": echo}),
    )
    with pytest.raises(AuthError) as caught:
        make().get_account()
    error = caught.value
    texts = []
    link: BaseException | None = error
    while link is not None:
        texts += [str(link), repr(link), *getattr(link, "__notes__", [])]
        assert not isinstance(link, requests.RequestException | APIError), type(link)
        link = link.__cause__ or link.__context__
    assert "***" in texts[0]
    for text in texts:
        for form in (creds.key_id, creds.secret_key, quote(creds.secret_key, safe=""), basic):
            assert form not in text
