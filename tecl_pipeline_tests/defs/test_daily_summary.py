"""The daily summary: after each session's trading one INFO alert, short enough for a
phone, says the leaf and its weights, the orders with their fills, the equity and the
P&L, and what a person must look at (or that nothing needs a look). A real paper run
delivers it to the webhook and the alert file with the run's own figures, and with none
of the deployment's secrets (X9, S2)."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import pytest
from dagster import DagsterInstance

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.performance import SessionFigures, account_figures
from tecl_pipeline.core.portfolio import PlannedOrder, RebalancePlan
from tecl_pipeline.core.strategy import Decision
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.assets import TargetAllocation
from tecl_pipeline.defs.daily_summary import (
    ALL_CLEAR,
    DAILY_SUMMARY,
    MAX_ITEMS,
    daily_summary,
    order_text,
)
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.presentation import money, share_price, signed_money
from tecl_pipeline.observability.logs import LOGGER_NAME
from tecl_pipeline.observability.redaction import Redactor
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.records import account_point
from tecl_pipeline.trading.execution import BrokerSnapshot, ExecutionReport
from tecl_pipeline.trading.models import Account, Order, OrderSide, OrderStatus
from tecl_pipeline.trading.reconcile import PositionChange, Residual, Residuals
from tecl_pipeline_tests.loopback_http import LoopbackServer
from tecl_pipeline_tests.observability.helpers import read_json_lines
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_SESSION

SESSION = date(2026, 11, 24)
PREVIOUS = date(2026, 11, 23)

# -- the text, from typed values -----------------------------------------------------------


def _order(
    symbol: str = "TECL",
    qty: str = "12",
    filled: str | None = None,
    price: str | None = "174.45",
    status: OrderStatus = OrderStatus.FILLED,
    side: OrderSide = OrderSide.BUY,
    reject_reason: str | None = None,
) -> Order:
    return Order(
        id=f"id-{symbol}",
        client_order_id=f"tecl-20261124-{symbol}-1",
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        filled_qty=Decimal(qty if filled is None else filled),
        filled_avg_price=None if price is None else Decimal(price),
        status=status,
        submitted_at=datetime(2026, 11, 24, 20, 45, tzinfo=UTC),
        reject_reason=reject_reason,
    )


def _decision() -> Decision:
    return Decision(
        leaf="B1",
        allocation={"UVXY": Decimal("0.25"), "BIL": Decimal("0.75")},
        reason="bull: ...",
        regime="bull",
    )


def _report(
    orders: tuple[Order, ...] = (), skipped: tuple[tuple[str, str], ...] = ()
) -> ExecutionReport:
    plan = RebalancePlan(
        targets={"UVXY": Decimal("12")},
        sells=(),
        buys=(PlannedOrder("UVXY", "buy", Decimal("12"), Decimal("2000")),),
    )
    return ExecutionReport(
        session=SESSION,
        broker="test broker",
        plan=plan,
        sent=orders,
        skipped=skipped,
        session_orders=orders,
    )


def _target(
    changes: tuple[PositionChange, ...] = (), unrecorded: tuple[date, ...] = ()
) -> TargetAllocation:
    account = Account(
        account_number="PA1",
        currency="USD",
        cash=Decimal("100000"),
        equity=Decimal("100000"),
        buying_power=Decimal("100000"),
    )
    snapshot = BrokerSnapshot(account=account, held={}, assets={}, plan=_report().plan)
    return TargetAllocation(
        session=SESSION,
        weights=dict(_decision().allocation),
        prices={"UVXY": Decimal("17.45"), "BIL": Decimal("91.2")},
        broker_before=snapshot,
        unexplained_changes=changes,
        sessions_without_record=unrecorded,
    )


def _residuals(*open_: Residual) -> Residuals:
    return Residuals(open=open_, below_minimum=(), min_trade_notional=Decimal("1"))


def _figures(
    equity: str = "101234.56",
    day: str = "234.56",
    total: str = "1234.56",
    previous: date | None = PREVIOUS,
) -> SessionFigures:
    return SessionFigures(
        session=SESSION,
        equity=Decimal(equity),
        cash=Decimal("12.34"),
        day_pnl=Decimal(day),
        total_pnl=Decimal(total),
        total_return=Decimal("0.0123"),
        drawdown=Decimal(0),
        peak=Decimal(equity),
        previous_session=previous,
        first_session=date(2026, 11, 20) if previous else SESSION,
        first_equity=Decimal(equity) - Decimal(total),
    )


def test_a_clean_session_says_all_clear_in_a_few_lines():
    """The title is one line with the leaf, the equity and the day's P&L; the detail has the
    weights, every order with its fill price, the account's figures, and says in a few
    words that nothing needs a look."""
    orders = (
        _order("BIL", qty="10", price="91.2", side=OrderSide.SELL),
        _order("UVXY", qty="12", price="17.4512"),
    )

    summary = daily_summary(_decision(), _report(orders), _target(), _residuals(), _figures())

    assert summary.title == (
        "session 2026-11-24: leaf B1, equity $101,234.56, day +$234.56, all clear"
    )
    assert summary.detail.splitlines() == [
        "leaf B1: UVXY 25.00%, BIL 75.00%",
        "orders: sell BIL 10 @ $91.20; buy UVXY 12 @ $17.4512",
        "equity $101,234.56, day P&L +$234.56, total P&L +$1,234.56 (+1.23%) since 2026-11-20",
        ALL_CLEAR,
    ]


def test_residuals_unfilled_orders_and_everything_else_to_look_at_are_listed():
    """Open residuals, orders that did not fill (with their status and the broker's reason),
    skipped trades, positions that changed without an order, sessions without a journal
    record: each a line under "to look at", and the title counts them."""
    orders = (
        _order("UVXY", qty="12", filled="5", price="17.45", status=OrderStatus.CANCELED),
        _order(
            "BIL",
            qty="10",
            filled="0",
            price=None,
            status=OrderStatus.REJECTED,
            side=OrderSide.SELL,
            reject_reason="insufficient\n  qty",
        ),
    )
    target = _target(
        changes=(PositionChange("TECL", Decimal("10"), Decimal("20")),),
        unrecorded=(date(2026, 11, 20), date(2026, 11, 21)),
    )
    residual = Residual("UVXY", Decimal("12"), Decimal("5"), Decimal("122.15"))

    summary = daily_summary(
        _decision(),
        _report(orders, skipped=(("UVXY", "UVXY is halted (LULD pause)"),)),
        target,
        _residuals(residual),
        _figures(),
    )

    assert summary.title.endswith(", 6 to look at")
    detail = summary.detail.splitlines()
    assert detail[1] == (
        "orders: buy UVXY 5 of 12 @ $17.45 [canceled]; sell BIL 0 of 10 [rejected]"
    )
    assert detail[3:] == [
        "to look at:",
        "- residual UVXY: holds 5, target 12 ($122.15 off)",
        "- not filled: buy UVXY 5 of 12 @ $17.45 [canceled]",
        "- not filled: sell BIL 0 of 10 [rejected] (insufficient qty)",
        "- skipped UVXY: UVXY is halted (LULD pause)",
        "- changed without an order: TECL: journal and fills say 10, broker holds 20 (x2)",
        "- no journal record for 2026-11-20, 2026-11-21",
    ]


def test_a_first_session_has_no_day_pnl_and_says_so():
    summary = daily_summary(
        _decision(),
        _report(),
        _target(),
        _residuals(),
        _figures(equity="100000", day="0", total="0", previous=None),
    )

    assert "day $0.00" in summary.title
    assert summary.detail.splitlines()[1:3] == [
        "orders: none",
        "equity $100,000.00, day P&L $0.00 (first session), total P&L $0.00 (+1.23%) "
        "since 2026-11-24",
    ]


def test_a_skip_below_the_minimum_trade_is_nothing_to_look_at():
    """A trade of cents skipped on purpose (the minimum-trade rule) leaves no open residual:
    it is in the run's metadata, not on a person's list."""
    skipped = (("TECL", "sell 0.000013297 @ 748.28 = $0.01 is below the minimum trade"),)
    below = Residual("TECL", Decimal("10"), Decimal("10.000013297"), Decimal("0.01"))

    summary = daily_summary(
        _decision(),
        _report(skipped=skipped),
        _target(),
        Residuals(open=(), below_minimum=(below,), min_trade_notional=Decimal("1")),
        _figures(),
    )

    assert summary.title.endswith("all clear") and summary.detail.endswith(ALL_CLEAR)


def test_a_loss_is_signed_and_a_long_list_stops_after_a_few_lines():
    symbols = [f"S{i}" for i in range(12)]
    skipped = tuple((symbol, "x" * 500) for symbol in symbols)
    short = [Residual(symbol, Decimal(3), Decimal(0), None) for symbol in symbols]

    summary = daily_summary(
        _decision(),
        _report(skipped=skipped),
        _target(),
        _residuals(*short),
        _figures(day="-1234.5"),
    )

    assert "day -$1,234.50" in summary.title and summary.title.endswith("24 to look at")
    look = summary.detail.split("to look at:\n", 1)[1].splitlines()
    assert len(look) == MAX_ITEMS
    assert look[-1] == f"- and {24 - MAX_ITEMS + 1} more (see the run)"
    # A broker's long reason is clipped: every line stays short enough to read on a phone.
    assert max(len(line) for line in summary.detail.splitlines()) < 200


def test_without_account_figures_the_rest_of_the_summary_still_comes():
    """The figures could not be worked out: the summary says so, points at the run's log
    for why (an unreadable journal is only one cause) and keeps the rest."""
    summary = daily_summary(_decision(), _report(), _target(), _residuals(), None)

    assert summary.title.startswith("session 2026-11-24: leaf B1, account figures unavailable")
    assert "account figures unavailable (see the run's log)" in summary.detail.splitlines()
    assert "journal" not in summary.detail
    assert "orders:" in summary.detail


def test_a_day_pnl_across_sessions_without_a_record_says_since_when():
    """The previous record is Friday's and Monday has none: the "day" P&L is since Friday,
    in the title and the account line alike."""
    friday = date(2026, 11, 20)

    summary = daily_summary(
        _decision(), _report(), _target(), _residuals(), _figures(previous=friday)
    )

    assert "day +$234.56 (since 2026-11-20)," in summary.title
    assert summary.detail.splitlines()[2] == (
        "equity $101,234.56, day P&L +$234.56 (since 2026-11-20), total P&L +$1,234.56 "
        "(+1.23%) since 2026-11-20"
    )


def test_a_holiday_between_two_records_is_no_gap():
    """The Friday after Thanksgiving follows Wednesday's session: a day's P&L, no note."""
    figures = replace(_figures(previous=date(2026, 11, 25)), session=date(2026, 11, 27))

    summary = daily_summary(_decision(), _report(), _target(), _residuals(), figures)

    assert "since 2026-11-25" not in summary.title + summary.detail
    assert "day P&L +$234.56, total P&L" in summary.detail


def test_the_builder_never_raises_into_the_step():
    """The session is journaled before the summary is built: a bug in the summary must not
    fail the step, so it turns into a summary that says it is unavailable."""
    broken = cast(Any, object())

    summary = daily_summary(_decision(), _report(), _target(), _residuals(), broken)

    assert summary.title == "session 2026-11-24: daily summary unavailable"
    assert "AttributeError" in summary.detail


def test_order_text_and_signed_money():
    assert order_text(_order(qty="1.500000000", price="33.3")) == "buy TECL 1.5 @ $33.30"
    assert [signed_money(Decimal(v)) for v in ("0.004", "-0.004", "2", "-2")] == [
        "$0.00",
        "$0.00",
        "+$2.00",
        "-$2.00",
    ]


# -- a real run, through the webhook ----------------------------------------------------------

CANARY_KEY = "PKSUMMARYCANARY7Q3XZ"
CANARY_SECRET = "summary-canary-secret-5f1d9c2e8b7a4e03a1c6"
HOOK_TOKEN = "hook-canary-token-8c1e5b0f2a7d4e69"


@dataclass
class Received:
    posts: list[tuple[str, bytes]] = field(default_factory=list)

    def summaries(self) -> list[dict[str, Any]]:
        """The Slack payloads of daily summaries, in the order they came."""
        payloads = [json.loads(body) for _, body in self.posts]
        return [p for p in payloads if f"*kind* {DAILY_SUMMARY}" in _context(p)]


def _context(payload: dict[str, Any]) -> str:
    return payload["blocks"][-1]["elements"][0]["text"]


@pytest.fixture
def webhook() -> Iterator[tuple[str, Received]]:
    """A Slack-compatible receiver on 127.0.0.1 whose path holds the canary token."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.posts.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return None

    with LoopbackServer(Handler) as server:
        yield f"{server.url}/services/{HOOK_TOKEN}", received


def test_a_paper_run_sends_its_summary_to_the_webhook_with_its_own_figures_and_no_secret(
    simulator, webhook, tmp_path, monkeypatch
):
    """Two sessions traded through the simulator standing in for Alpaca, with a canary key
    pair and a canary webhook token: each session's summary reaches the webhook, the alert
    file and the log; the second one holds its leaf, every order with its fill price, and
    the equity, day P&L and total P&L of the journal's figures; no body holds the key, the
    secret or the token, in any encoding the redactor knows."""
    url, received = webhook
    simulator.simulator.set_credentials(CANARY_KEY, CANARY_SECRET)
    env = {
        "TECL_MODE": "paper",
        "TECL_BROKER_URL": simulator.url,
        "TECL_DATA_URL": simulator.url,
        "TECL_STATE_URI": (tmp_path / "state").as_uri(),
        "TECL_LOG_DIR": str(tmp_path / "logs"),
        "TECL_ALERT_WEBHOOK_URL": url,
        "ALPACA_API_KEY": CANARY_KEY,
        "ALPACA_SECRET_KEY": CANARY_SECRET,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # what the EnvVars of the resources read
    settings = Settings.from_env(env, cwd=tmp_path)
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    instance = DagsterInstance.ephemeral()
    sessions = (CALENDAR.previous_session(SIM_SESSION), SIM_SESSION)

    results = []
    for session in sessions:
        simulator.simulator.set_clock(CALENDAR.decision_time(session))
        results.append(
            job.execute_in_process(
                partition_key=session.isoformat(), instance=instance, raise_on_error=False
            )
        )

    assert all(result.success for result in results)
    first, second = received.summaries()
    assert "(first session)" in first["blocks"][1]["text"]["text"]
    result = results[-1]
    decision = result.asset_value("signal")
    after = result.asset_value("post_trade_positions")
    history = LocalJournal(tmp_path / "state" / "journal").history()
    figures = account_figures([account_point(r) for r in history])[-1]
    assert (figures.session, figures.equity) == (SIM_SESSION, after.equity)
    assert figures.day_pnl != 0, "two sessions of a moving market must have a day P&L"
    header = second["blocks"][0]["text"]["text"]
    # Slack's mrkdwn: "&" arrives escaped.
    detail = second["blocks"][1]["text"]["text"].replace("&amp;", "&")
    assert header.startswith("[info] session 2026-11-24: ")
    assert f"leaf {decision.leaf}, equity {money(after.equity)}" in header
    assert f"day {signed_money(figures.day_pnl)}" in header
    assert after.session_orders, "the second session must have traded"
    for order in after.session_orders:
        assert order.filled_avg_price is not None
        filled = f"{order.side.value} {order.symbol} {order.filled_qty.normalize():f} @ "
        assert filled + share_price(order.filled_avg_price) in detail
    assert f"equity {money(figures.equity)}, day P&L {signed_money(figures.day_pnl)}" in detail
    assert f"total P&L {signed_money(figures.total_pnl)}" in detail
    assert f"since {figures.first_session}" in detail
    assert detail.endswith(ALL_CLEAR)
    # The file and the log sinks have them too, one per session, as INFO.
    filed = read_json_lines(tmp_path / "logs" / "alerts.jsonl")
    assert [(a["session"], a["severity"]) for a in filed if a["kind"] == DAILY_SUMMARY] == [
        (day.isoformat(), "info") for day in sessions
    ]
    logged = read_json_lines(tmp_path / "logs" / f"{LOGGER_NAME}.jsonl")
    assert [
        (line["session"], line["level"])
        for line in logged
        if cast(dict[str, Any], line.get("extra", {})).get("alert_kind") == DAILY_SUMMARY
    ] == [(day.isoformat(), "INFO") for day in sessions]
    # No secret in any body the webhook got, nor in the alert file: raw, or percent-, JSON-
    # or base64-encoded (the redactor's forms of the values, and of the key pair).
    canaries = Redactor.for_credentials(CANARY_KEY, CANARY_SECRET)
    canaries.register(HOOK_TOKEN)
    sent = [body for _, body in received.posts]
    sent.append((tmp_path / "logs" / "alerts.jsonl").read_bytes())
    assert len(received.posts) >= 2
    for body in sent:
        assert not canaries.contains_secret(body.decode())
        assert canaries.redact_bytes(body) == body
