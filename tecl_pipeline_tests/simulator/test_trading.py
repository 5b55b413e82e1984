"""The simulator's trading API through the real alpaca-py TradingClient over HTTP: every answer
parses into alpaca-py's own models, and Alpaca's order rules hold."""

# The simulator fixtures are imported below; pytest injects them into tests by name.
# ruff: noqa: F811

import json
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from urllib.error import HTTPError

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import (
    AccountStatus,
    AssetClass,
    OrderSide,
    OrderStatus,
    PositionSide,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.models import Asset, Clock, Order, Position, TradeAccount
from alpaca.trading.requests import GetCalendarRequest, GetOrdersRequest, LimitOrderRequest

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.simulator.model import MARKET_BUY_COLLAR
from tecl_pipeline_tests.simulator.simulator_fixtures import (  # noqa: F401 (fixtures)
    SIM_SESSION,
    amount,
    set_sim_clock,
    sim_admin,
    sim_calendar,
    sim_state,
    simulator,
    trading_client,
)
from tecl_pipeline_tests.simulator.simulator_fixtures import market_order as order

# These tests are about the answers' shapes and Alpaca's rules, not an order's life:
# orders fill in the POST here.
pytestmark = pytest.mark.instant_fills


NEXT_SESSION = date(2026, 11, 25)  # Wednesday
THANKSGIVING = date(2026, 11, 26)
FRIDAY = date(2026, 11, 27)  # closes at 13:00
MONDAY = date(2026, 11, 30)


def ny(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=EXCHANGE_TZ)


CENT = Decimal("0.01")


def refused(call, *args, **kwargs) -> APIError:
    with pytest.raises(APIError) as caught:
        call(*args, **kwargs)
    return caught.value


def price(simulator, symbol: str) -> Decimal:
    return simulator.simulator.price(symbol)


# -- account, clock, calendar, assets, positions --------------------------------------------------


def test_account_parses_and_is_a_fresh_margin_account_as_on_paper(simulator):
    """Alpaca's paper accounts are margin accounts: twice the equity to buy with (Reg T),
    the account's own cash beside it as the non-marginable buying power."""
    account = trading_client(simulator.url).get_account()
    assert isinstance(account, TradeAccount)
    assert account.status is AccountStatus.ACTIVE
    assert account.currency == "USD"
    assert account.cash == account.equity == account.non_marginable_buying_power == "100000"
    assert account.buying_power == account.regt_buying_power == "200000"
    assert account.portfolio_value == "100000"
    assert account.trading_blocked is False
    assert account.multiplier == "2"
    assert sim_state(simulator.url)["account_kind"] == "margin"


def test_a_pattern_day_traders_account_has_four_times_its_equity_to_buy_with(simulator):
    """Alpaca's PDT accounts ($25,000 or more, flagged): the day's buying power is four times
    the equity, its Reg T figure twice, and the account's own cash is still what it is."""
    sim_admin(simulator.url, "/_sim/account", {"kind": "pdt"})
    account = trading_client(simulator.url).get_account()
    assert (account.multiplier, account.pattern_day_trader, account.shorting_enabled) == (
        "4",
        True,
        True,
    )
    assert account.buying_power == account.daytrading_buying_power == "400000"
    assert account.regt_buying_power == "200000"
    assert account.cash == account.non_marginable_buying_power == "100000"
    assert sim_state(simulator.url)["account_kind"] == "pdt"


def test_a_cash_account_buys_with_its_cash_alone(simulator):
    sim_admin(simulator.url, "/_sim/account", {"kind": "cash"})
    account = trading_client(simulator.url).get_account()
    assert account.cash == account.buying_power == account.equity == "100000"
    assert account.multiplier == "1"
    assert (account.pattern_day_trader, account.shorting_enabled) == (False, False)
    assert account.daytrading_buying_power == "0"
    with pytest.raises(HTTPError) as caught:
        sim_admin(simulator.url, "/_sim/account", {"kind": "pdt-ish"})
    assert caught.value.code == 400
    sim_admin(simulator.url, "/_sim/reset")
    assert sim_state(simulator.url)["account_kind"] == "margin"


def test_account_follows_a_fill(simulator):
    client = trading_client(simulator.url)
    tecl = price(simulator, "TECL")
    order(client, "TECL", 10, "acct-1")
    account = client.get_account()
    cost = (10 * tecl).quantize(Decimal("0.01"))
    assert amount(account.cash) == Decimal("100000") - cost
    assert amount(account.non_marginable_buying_power) == amount(account.cash)
    # Reg T: twice the equity, less what the long positions already use.
    assert amount(account.buying_power) == 2 * Decimal("100000") - cost
    assert amount(account.long_market_value) == cost
    assert amount(account.equity) == Decimal("100000")


def test_clock_at_decision_time_is_open(simulator):
    clock = trading_client(simulator.url).get_clock()
    assert isinstance(clock, Clock)
    assert clock.is_open is True
    assert clock.timestamp == ny(SIM_SESSION, 15, 45)
    assert clock.next_close == ny(SIM_SESSION, 16)
    assert clock.next_open == ny(NEXT_SESSION, 9, 30)


@pytest.mark.parametrize(
    ("moment", "is_open", "next_open", "next_close"),
    [
        # Before the open: today's open and close are next.
        (ny(NEXT_SESSION, 8), False, ny(NEXT_SESSION, 9, 30), ny(NEXT_SESSION, 16)),
        # After Wednesday's close: Thanksgiving is skipped, Friday closes early (T3).
        (ny(NEXT_SESSION, 17), False, ny(FRIDAY, 9, 30), ny(FRIDAY, 13)),
        # On the holiday itself.
        (ny(THANKSGIVING, 12), False, ny(FRIDAY, 9, 30), ny(FRIDAY, 13)),
        # Friday during the short session, and after the early close.
        (ny(FRIDAY, 12, 45), True, ny(MONDAY, 9, 30), ny(FRIDAY, 13)),
        (ny(FRIDAY, 14), False, ny(MONDAY, 9, 30), ny(MONDAY, 16)),
    ],
)
def test_clock_follows_the_calendar(simulator, moment, is_open, next_open, next_close):
    """T3: holidays and early closes come from the exchange calendar."""
    set_sim_clock(simulator.url, moment)
    clock = trading_client(simulator.url).get_clock()
    assert clock.timestamp == moment
    assert (clock.is_open, clock.next_open, clock.next_close) == (is_open, next_open, next_close)


def test_calendar_lists_sessions_with_early_closes(simulator):
    days = trading_client(simulator.url).get_calendar(
        GetCalendarRequest(start=SIM_SESSION, end=SIM_SESSION + timedelta(days=6))
    )
    assert [d.date.isoformat() for d in days] == [
        "2026-11-24",
        "2026-11-25",
        "2026-11-27",
        "2026-11-30",
    ]
    assert days[2].close.hour == 13


def test_asset_parses_and_reflects_admin_changes(simulator):
    client = trading_client(simulator.url)
    asset = client.get_asset("TECL")
    assert isinstance(asset, Asset)
    assert asset.asset_class is AssetClass.US_EQUITY
    assert (asset.symbol, asset.tradable, asset.fractionable, asset.status.value) == (
        "TECL",
        True,
        True,
        "active",
    )
    assert client.get_asset(asset.id).symbol == "TECL"  # by asset id, as Alpaca allows
    sim_admin(simulator.url, "/_sim/assets/TECL", {"tradable": False, "fractionable": False})
    changed = client.get_asset("TECL")
    assert (changed.tradable, changed.fractionable) == (False, False)


def test_unknown_asset_is_404(simulator):
    error = refused(trading_client(simulator.url).get_asset, "NOPE")
    assert (error.status_code, error.code) == (404, 40410000)


def test_positions_empty_then_one_after_a_buy(simulator):
    client = trading_client(simulator.url)
    assert client.get_all_positions() == []
    error = refused(client.get_open_position, "TECL")
    assert (error.status_code, error.code, error.message) == (
        404,
        40410000,
        "position does not exist",
    )
    order(client, "TECL", 3, "pos-1")
    (position,) = client.get_all_positions()
    assert isinstance(position, Position)
    single = client.get_open_position("TECL")
    assert position.qty == single.qty == single.qty_available == "3"
    assert (
        Decimal(position.avg_entry_price)
        == amount(position.current_price)
        == price(simulator, "TECL")
    )
    assert position.side.value == "long"


# -- submitting -----------------------------------------------------------------------------------


def test_market_buy_fills_at_the_sessions_close(simulator):
    client = trading_client(simulator.url)
    tecl = price(simulator, "TECL")
    placed = order(client, "TECL", 10, "buy-1")
    assert isinstance(placed, Order)
    assert placed.status is OrderStatus.FILLED
    assert placed.client_order_id == "buy-1"
    assert (placed.qty, placed.filled_qty) == ("10", "10")
    assert amount(placed.filled_avg_price) == tecl
    assert placed.filled_at == ny(SIM_SESSION, 15, 45)
    assert placed.expires_at == ny(SIM_SESSION, 16)
    assert placed.symbol == "TECL" and placed.side is OrderSide.BUY


def test_fractional_qty_round_trips_exactly(simulator):
    """C3: qty travels as a JSON number from alpaca-py and comes back as an exact string."""
    placed = order(trading_client(simulator.url), "BIL", 1.234567891, "frac-1")
    assert placed.filled_qty == "1.234567891"
    assert sim_state(simulator.url)["positions"]["BIL"]["qty"] == "1.234567891"


def test_duplicate_client_order_id_is_422_even_after_cancel(simulator):
    """X3, C2: a client order id is used once, whatever became of its order."""
    client = trading_client(simulator.url)
    order(client, "TECL", 1, "dup-filled")
    error = refused(order, client, "TECL", 1, "dup-filled")
    assert (error.status_code, error.code, error.message) == (
        422,
        40010001,
        "client_order_id must be unique",
    )
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    open_order = order(client, "TECL", 1, "dup-canceled")
    client.cancel_order_by_id(open_order.id)
    error = refused(order, client, "TECL", 1, "dup-canceled")
    assert (error.status_code, error.message) == (422, "client_order_id must be unique")
    outcomes = [
        (s["client_order_id"], s["outcome"]) for s in sim_state(simulator.url)["submissions"]
    ]
    assert outcomes == [
        ("dup-filled", "filled"),
        ("dup-filled", "rejected: client_order_id must be unique"),
        ("dup-canceled", "new"),
        ("dup-canceled", "rejected: client_order_id must be unique"),
    ]


def test_a_rejected_request_does_not_use_up_its_client_order_id(simulator):
    client = trading_client(simulator.url)
    refused(order, client, "TECL", 1_000_000, "retry-me")
    assert order(client, "TECL", 1, "retry-me").status is OrderStatus.FILLED


def test_fractional_orders_must_be_day_orders(simulator):
    """X1: a fractional GTC order is refused with 422 naming the rule."""
    client = trading_client(simulator.url)
    error = refused(order, client, "TECL", 0.5, "frac-gtc", tif=TimeInForce.GTC)
    assert (error.status_code, error.code) == (422, 42210000)
    assert "fractional orders must be DAY orders" in error.message
    assert order(client, "TECL", 2, "whole-gtc", tif=TimeInForce.GTC).status is OrderStatus.FILLED


def test_fractional_qty_on_a_non_fractionable_asset_is_422(simulator):
    """X1, T7: the asset's fractionable flag is enforced."""
    sim_admin(simulator.url, "/_sim/assets/UVXY", {"fractionable": False})
    client = trading_client(simulator.url)
    error = refused(order, client, "UVXY", 1.5, "uvxy-frac")
    assert error.status_code == 422
    assert "UVXY" in error.message and "not fractionable" in error.message
    assert order(client, "UVXY", 2, "uvxy-whole").status is OrderStatus.FILLED


def test_non_tradable_asset_is_422_naming_it(simulator):
    """T7: a symbol the broker will not trade is refused with its name in the reason."""
    sim_admin(simulator.url, "/_sim/assets/SQQQ", {"tradable": False})
    error = refused(order, trading_client(simulator.url), "SQQQ", 1, "sqqq-1")
    assert (error.status_code, error.code) == (422, 42210000)
    assert "SQQQ" in error.message and "not tradable" in error.message


def test_halted_asset_is_422_naming_it(simulator):
    """X10: a halted symbol's orders are refused; the asset endpoint does not show halts."""
    sim_admin(simulator.url, "/_sim/assets/TECL", {"halted": True})
    client = trading_client(simulator.url)
    error = refused(order, client, "TECL", 1, "halted-1")
    assert error.status_code == 422 and "TECL" in error.message and "halted" in error.message
    assert client.get_asset("TECL").tradable is True
    sim_admin(simulator.url, "/_sim/assets/TECL", {"halted": False})
    assert order(client, "TECL", 1, "halted-2").status is OrderStatus.FILLED


@pytest.mark.parametrize(("kind", "power"), [("cash", "100000"), ("margin", "200000")])
def test_insufficient_buying_power_is_403_and_changes_nothing(simulator, kind, power):
    """B7: a buy above the buying power (the cash, or twice the equity on margin) is refused
    outright."""
    sim_admin(simulator.url, "/_sim/account", {"kind": kind})
    client = trading_client(simulator.url)
    qty = int(Decimal(power) / price(simulator, "SPY")) + 1
    error = refused(order, client, "SPY", qty, "too-big")
    assert (error.status_code, error.code, error.message) == (
        403,
        40310000,
        "insufficient buying power",
    )
    assert client.get_account().cash == "100000"
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL)) == []


def test_a_margin_buy_beyond_the_cash_borrows(simulator):
    """What a margin account allows and the pipeline must never do: cash goes negative."""
    client = trading_client(simulator.url)
    qty = int(Decimal("150000") / price(simulator, "SPY"))

    assert order(client, "SPY", qty, "borrow-1").status is OrderStatus.FILLED
    assert amount(client.get_account().cash) < 0


def _limit_buy(client, qty, limit, cid):
    return client.submit_order(
        LimitOrderRequest(
            symbol="SPY",
            qty=qty,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=limit,
            client_order_id=cid,
        )
    )


def test_a_market_buy_is_checked_at_a_collar_above_the_price_a_limit_buy_at_its_limit(
    simulator,
):
    """B7, as Alpaca checks buying power: a market buy at up to 4% above the price, so one
    sized to nearly all of a cash account's cash is refused (403 with the buying power and
    the cost basis it was checked at); the same buy as a limit order 0.5% above the price
    is accepted, and fills at the price, never above its limit."""
    sim_admin(simulator.url, "/_sim/account", {"kind": "cash"})
    client = trading_client(simulator.url)
    spy = price(simulator, "SPY")
    qty = int(Decimal("99500") / spy)

    error = refused(order, client, "SPY", qty, "collar-1")
    assert error.status_code == 403
    body = json.loads(error._error)
    assert body["message"] == "insufficient buying power"
    assert body["buying_power"] == "100000"
    assert Decimal(body["cost_basis"]) == (qty * spy * Decimal("1.04")).quantize(CENT)

    limit = (spy * Decimal("1.005")).quantize(CENT, ROUND_DOWN)
    placed = _limit_buy(client, qty, float(limit), "limit-1")
    assert (placed.order_type, amount(placed.limit_price)) == ("limit", limit)
    filled = client.get_order_by_id(placed.id)
    assert filled.status is OrderStatus.FILLED
    assert amount(filled.filled_avg_price) == spy <= limit
    assert amount(client.get_account().cash) == Decimal(100000) - (qty * spy).quantize(CENT)


def test_the_market_buy_collar_is_configurable_within_alpacas_range(simulator):
    """Alpaca's collar is 2.5% to 4%; the simulator takes 4% unless told. At 2.5% a market
    buy of 97% of a cash account's cash is accepted that 4% refuses; a collar outside 0-20%
    is a 400 that changes nothing."""
    sim_admin(simulator.url, "/_sim/account", {"kind": "cash"})
    client = trading_client(simulator.url)
    qty = int(Decimal("97000") / price(simulator, "SPY"))
    assert sim_state(simulator.url)["market_buy_collar"] == "0.04"
    assert refused(order, client, "SPY", qty, "collar-4").status_code == 403

    sim_admin(simulator.url, "/_sim/collar", {"market_buy": "0.025"})

    assert order(client, "SPY", qty, "collar-2.5").status is OrderStatus.FILLED
    for bad in ("0.5", "-0.01", "lots", "NaN", True, None):
        with pytest.raises(HTTPError) as caught:
            sim_admin(simulator.url, "/_sim/collar", {"market_buy": bad})
        assert caught.value.code == 400
    assert sim_state(simulator.url)["market_buy_collar"] == "0.025"


def test_a_limit_buy_below_the_price_rests_and_holds_its_limit_value(simulator):
    """A limit the market has not reached does not fill; it holds qty x limit of the buying
    power until cancelled, and then nothing was bought."""
    sim_admin(simulator.url, "/_sim/account", {"kind": "cash"})
    client = trading_client(simulator.url)
    spy = price(simulator, "SPY")
    low = (spy * Decimal("0.9")).quantize(CENT, ROUND_DOWN)

    placed = _limit_buy(client, 10, float(low), "limit-low")
    resting = [client.get_order_by_id(placed.id).status for _ in range(3)]

    assert resting == [OrderStatus.NEW] * 3
    assert amount(client.get_account().buying_power) == Decimal(100000) - 10 * low
    client.cancel_order_by_id(placed.id)
    assert client.get_order_by_id(placed.id).status is OrderStatus.CANCELED
    assert client.get_all_positions() == []


def test_open_buys_reserve_buying_power(simulator):
    """B7: cash promised to an open buy cannot be spent twice."""
    sim_admin(simulator.url, "/_sim/account", {"kind": "cash"})
    client = trading_client(simulator.url)
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    spy = price(simulator, "SPY")
    qty = int(Decimal("60000") / spy)
    order(client, "SPY", qty, "reserve-1")
    account = client.get_account()
    assert account.cash == "100000"
    # As Alpaca: an open market buy holds its value at the collar Alpaca checks it at.
    held = (qty * spy * (1 + MARKET_BUY_COLLAR)).quantize(Decimal("0.01"))
    assert amount(account.buying_power) == Decimal("100000") - held
    error = refused(order, client, "SPY", qty, "reserve-2")
    assert error.message == "insufficient buying power"


def test_selling_more_than_held_is_403(simulator):
    client = trading_client(simulator.url)
    order(client, "BIL", 5, "bil-buy")
    error = refused(order, client, "BIL", 6, "bil-sell", side=OrderSide.SELL)
    assert (error.status_code, error.code) == (403, 40310000)
    assert error.message == "insufficient qty available for order (requested: 6, available: 5)"
    sold = order(client, "BIL", 5, "bil-sell-ok", side=OrderSide.SELL)
    assert sold.status is OrderStatus.FILLED
    assert client.get_all_positions() == []
    assert amount(client.get_account().cash) == Decimal("100000")


def test_a_margin_account_sells_short_what_it_does_not_hold(simulator):
    """As Alpaca: on a margin account a sell of a shortable symbol held none long opens a
    short position (negative quantity, side short), with the proceeds in cash and a negative
    short market value in the equity."""
    client = trading_client(simulator.url)
    uvxy = price(simulator, "UVXY")

    sold = order(client, "UVXY", 10, "short-1", side=OrderSide.SELL)

    assert sold.status is OrderStatus.FILLED
    position = client.get_open_position("UVXY")
    assert (position.qty, position.side) == ("-10", PositionSide.SHORT)
    assert amount(position.market_value) == -(10 * uvxy).quantize(CENT)
    account = client.get_account()
    assert amount(account.cash) == Decimal(100000) + (10 * uvxy).quantize(CENT)
    assert amount(account.short_market_value) == -(10 * uvxy).quantize(CENT)
    assert amount(account.equity) == Decimal(100000)
    # Bought back, the position is gone and the cash is where it began.
    order(client, "UVXY", 10, "cover-1")
    assert client.get_all_positions() == []
    assert amount(client.get_account().cash) == Decimal(100000)


@pytest.mark.parametrize(
    ("setup", "qty", "message"),
    [
        ("cash", 10, "insufficient qty available for order (requested: 10, available: 0)"),
        ("not shortable", 10, "insufficient qty available for order (requested: 10, available: 0)"),
        ("fraction", Decimal("0.5"), "fractional orders cannot be sold short"),
        ("long", 6, "insufficient qty available for order (requested: 6, available: 5)"),
    ],
)
def test_what_alpaca_will_not_sell_short(simulator, setup, qty, message):
    """A cash account never shorts; nor does anyone a symbol not shortable, or a fraction;
    and a sell beyond a long position is refused rather than flipping it short in one order."""
    client = trading_client(simulator.url)
    if setup == "cash":
        sim_admin(simulator.url, "/_sim/account", {"kind": "cash"})
    elif setup == "not shortable":
        simulator.simulator.set_asset("UVXY", shortable=False)
    elif setup == "long":
        order(client, "UVXY", 5, "long-1")

    error = refused(order, client, "UVXY", qty, "short-x", side=OrderSide.SELL)

    assert (error.status_code, error.message) == (403, message)
    assert {p.symbol: p.qty for p in client.get_all_positions()} == (
        {"UVXY": "5"} if setup == "long" else {}
    )


def test_an_opening_short_is_checked_against_buying_power_at_3_percent_above(simulator):
    sim_admin(simulator.url, "/_sim/account", {"kind": "margin", "cash": "1000"})
    client = trading_client(simulator.url)
    uvxy = price(simulator, "UVXY")
    qty = int(Decimal(2000) / uvxy) + 1  # beyond the 2 x 1,000 of buying power

    error = refused(order, client, "UVXY", qty, "short-big", side=OrderSide.SELL)

    assert (error.status_code, error.message) == (403, "insufficient buying power")
    body = json.loads(error._error)
    assert Decimal(body["cost_basis"]) == (qty * uvxy * Decimal("1.03")).quantize(CENT)
    assert client.get_all_positions() == []


def test_open_short_sales_hold_buying_power_as_open_buys_do(simulator):
    """As Alpaca: available buying power is reduced by open sell-short orders too, so two
    short sales cannot both spend it."""
    sim_admin(simulator.url, "/_sim/account", {"kind": "margin", "cash": "1000"})
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    client = trading_client(simulator.url)
    uvxy = price(simulator, "UVXY")
    qty = int(Decimal(1200) / uvxy)  # 1,200 of the 2,000 of buying power, each

    order(client, "UVXY", qty, "short-a", side=OrderSide.SELL)
    held = (qty * uvxy * Decimal("1.03")).quantize(CENT)
    assert amount(client.get_account().buying_power) == Decimal(2000) - held

    error = refused(order, client, "UVXY", qty, "short-b", side=OrderSide.SELL)
    assert (error.status_code, error.message) == (403, "insufficient buying power")


def test_open_sells_hold_their_quantity(simulator):
    client = trading_client(simulator.url)
    order(client, "BIL", 5, "hold-buy")
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    order(client, "BIL", 4, "hold-sell-1", side=OrderSide.SELL)
    assert client.get_open_position("BIL").qty_available == "1"
    error = refused(order, client, "BIL", 2, "hold-sell-2", side=OrderSide.SELL)
    assert "available: 1" in error.message


def test_order_sent_while_closed_is_accepted_and_fills_at_the_next_open(simulator):
    """T3: with the market closed, Alpaca queues the order; it fills once the session opens."""
    client = trading_client(simulator.url)
    set_sim_clock(simulator.url, ny(SIM_SESSION, 17))
    queued = order(client, "TECL", 4, "queued-1")
    assert queued.status is OrderStatus.ACCEPTED
    assert queued.filled_qty == "0" and queued.filled_avg_price is None
    assert client.get_account().cash == "100000"
    assert client.get_order_by_id(queued.id).status is OrderStatus.ACCEPTED
    set_sim_clock(simulator.url, ny(NEXT_SESSION, 10))
    filled = client.get_order_by_id(queued.id)
    assert filled.status is OrderStatus.FILLED
    assert amount(filled.filled_avg_price) == price(simulator, "TECL")
    assert filled.expires_at == ny(NEXT_SESSION, 16)


def test_day_orders_expire_at_the_close_and_gtc_orders_do_not(simulator):
    client = trading_client(simulator.url)
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    day = order(client, "TECL", 1, "day-1")
    gtc = order(client, "TECL", 1, "gtc-1", tif=TimeInForce.GTC)
    set_sim_clock(simulator.url, ny(SIM_SESSION, 16, 5))
    expired = client.get_order_by_id(day.id)
    assert expired.status is OrderStatus.EXPIRED
    assert expired.expired_at == ny(SIM_SESSION, 16)
    assert client.get_order_by_id(gtc.id).status is OrderStatus.NEW
    assert client.get_order_by_id(gtc.id).expires_at is None


# -- reading and cancelling ---------------------------------------------------------------------


def test_listing_orders_by_status_limit_direction_symbols_and_time(simulator):
    client = trading_client(simulator.url)
    order(client, "TECL", 1, "list-1")
    set_sim_clock(simulator.url, ny(SIM_SESSION, 15, 46))
    order(client, "BIL", 1, "list-2")
    set_sim_clock(simulator.url, ny(SIM_SESSION, 15, 47))
    order(client, "SPY", 1, "list-3")
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    order(client, "TECL", 1, "list-4")

    def ids(**filters) -> list[str]:
        return [o.client_order_id for o in client.get_orders(GetOrdersRequest(**filters))]

    assert ids() == ["list-4"]  # default: open orders only
    assert ids(status=QueryOrderStatus.CLOSED) == ["list-3", "list-2", "list-1"]
    assert ids(status=QueryOrderStatus.ALL, direction="asc") == [
        "list-1",
        "list-2",
        "list-3",
        "list-4",
    ]
    assert ids(status=QueryOrderStatus.ALL, limit=2) == ["list-4", "list-3"]
    assert ids(status=QueryOrderStatus.ALL, symbols=["TECL"]) == ["list-4", "list-1"]
    assert ids(status=QueryOrderStatus.ALL, side=OrderSide.SELL) == []
    assert ids(status=QueryOrderStatus.ALL, after=ny(SIM_SESSION, 15, 45), direction="asc") == [
        "list-2",
        "list-3",
        "list-4",
    ]
    assert ids(status=QueryOrderStatus.ALL, until=ny(SIM_SESSION, 15, 47)) == ["list-2", "list-1"]


def test_order_lookup_by_id_and_client_order_id(simulator):
    client = trading_client(simulator.url)
    placed = order(client, "TECL", 1, "lookup-1")
    assert client.get_order_by_id(placed.id).client_order_id == "lookup-1"
    assert client.get_order_by_client_id("lookup-1").id == placed.id
    error = refused(client.get_order_by_client_id, "never-sent")
    assert (error.status_code, error.code) == (404, 40410000)
    error = refused(client.get_order_by_id, "00000000-0000-4000-8000-000000000000")
    assert error.status_code == 404


def test_cancel_an_open_order_and_not_a_closed_one(simulator):
    client = trading_client(simulator.url)
    filled = order(client, "TECL", 1, "cancel-filled")
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    open_order = order(client, "TECL", 1, "cancel-open")
    assert client.cancel_order_by_id(open_order.id) is None  # 204, no body
    canceled = client.get_order_by_id(open_order.id)
    assert canceled.status is OrderStatus.CANCELED and canceled.canceled_at is not None
    error = refused(client.cancel_order_by_id, open_order.id)
    assert (error.status_code, error.message) == (422, 'order is already in "canceled" state')
    error = refused(client.cancel_order_by_id, filled.id)
    assert (error.status_code, error.message) == (422, 'order is already in "filled" state')
    error = refused(client.cancel_order_by_id, "00000000-0000-4000-8000-000000000000")
    assert error.status_code == 404


def test_cancel_all_open_orders(simulator):
    client = trading_client(simulator.url)
    order(client, "TECL", 1, "all-filled")
    sim_admin(simulator.url, "/_sim/fills", {"mode": "never"})
    first, second = order(client, "TECL", 1, "all-1"), order(client, "BIL", 1, "all-2")
    answers = client.cancel_orders()
    assert sorted(str(a.id) for a in answers) == sorted([str(first.id), str(second.id)])
    assert all(a.status == 200 for a in answers)
    assert client.get_orders() == []
    raw = requests.delete(
        f"{simulator.url}/v2/orders",
        headers={"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"},
        timeout=5,
    )
    assert (raw.status_code, raw.json()) == (207, [])


# -- credentials, headers, account switches -------------------------------------------------------


def test_wrong_credentials_are_401(simulator):
    """B4: a refused key pair gets Alpaca's 401 body."""
    error = refused(trading_client(simulator.url, secret="wrong").get_account)
    assert (error.status_code, error.code, error.message) == (
        401,
        40110000,
        "request is not authorized",
    )


def test_rotated_credentials_refuse_the_old_pair(simulator):
    """X6: after rotation the cached old key pair gets 401 and the new pair works."""
    old = trading_client(simulator.url)
    old.get_account()
    sim_admin(simulator.url, "/_sim/credentials", {"key": "key-2", "secret": "secret-2"})
    assert refused(old.get_account).status_code == 401
    fresh = trading_client(simulator.url, key="key-2", secret="secret-2")
    assert fresh.get_account().status is AccountStatus.ACTIVE


def test_account_currency_switch_is_visible(simulator):
    """X8: the account's currency is what the broker says."""
    sim_admin(simulator.url, "/_sim/account", {"currency": "EUR", "cash": "5000.50"})
    account = trading_client(simulator.url).get_account()
    assert (account.currency, account.cash) == ("EUR", "5000.5")


def test_blocked_account_cannot_trade(simulator):
    sim_admin(simulator.url, "/_sim/account", {"trading_blocked": True})
    client = trading_client(simulator.url)
    assert client.get_account().trading_blocked is True
    assert refused(order, client, "TECL", 1, "blocked-1").status_code == 403


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"symbol": "TECL", "side": "buy", "type": "market", "time_in_force": "day"},
            422,
            "qty is required",
        ),
        (
            {"symbol": "TECL", "qty": "1", "side": "buy", "type": "limit", "time_in_force": "day"},
            422,
            "limit_price is required for limit orders",
        ),
        (
            {"symbol": "TECL", "qty": "1", "side": "buy", "type": "stop", "time_in_force": "day"},
            422,
            "market and limit orders only",
        ),
        (
            {
                "symbol": "TECL",
                "qty": "1",
                "side": "buy",
                "type": "limit",
                "limit_price": "10.005",
                "time_in_force": "day",
            },
            422,
            "sub-penny increment",
        ),
        (
            {
                "symbol": "TECL",
                "qty": "1",
                "side": "buy",
                "type": "market",
                "limit_price": "10",
                "time_in_force": "day",
            },
            422,
            "limit_price is only for limit orders",
        ),
        (
            {
                "symbol": "TECL",
                "qty": "-1",
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
            },
            422,
            "qty must be > 0",
        ),
        (
            {
                "symbol": "TECL",
                "qty": "0.0000000001",
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
            },
            422,
            "9 decimal places",
        ),
        (
            {
                "symbol": "TECL",
                "qty": "1",
                "side": "hold",
                "type": "market",
                "time_in_force": "day",
            },
            422,
            "invalid side",
        ),
        (
            {
                "symbol": "TECL",
                "qty": "1",
                "side": "buy",
                "type": "market",
                "time_in_force": "week",
            },
            422,
            "invalid time_in_force",
        ),
        (
            {"symbol": "NOPE", "qty": "1", "side": "buy", "type": "market", "time_in_force": "day"},
            422,
            '"NOPE" not found',
        ),
        (
            {"qty": "1", "side": "buy", "type": "market", "time_in_force": "day"},
            422,
            "symbol is required",
        ),
    ],
)
def test_invalid_order_requests_are_refused_naming_the_field(simulator, body, status, message):
    answer = requests.post(
        f"{simulator.url}/v2/orders",
        json=body,
        headers={"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"},
        timeout=5,
    )
    assert answer.status_code == status
    assert answer.json()["code"] == 40010001
    assert message in answer.json()["message"]


def test_a_body_that_is_not_json_is_400(simulator):
    answer = requests.post(
        f"{simulator.url}/v2/orders",
        data=b"{not json",
        headers={"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json() == {"code": 40010000, "message": "request body format is invalid"}
