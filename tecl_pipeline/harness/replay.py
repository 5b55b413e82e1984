"""Replay of real history (R4, R5, D6): every session of a date range through the daily job,
against the simulator filling at each session's close, checked session by session against
`signal_history` computed on the same closes outside the pipeline.

The summary's figures are what a reviewed baseline stores: a change that moves any of them
must come with an updated baseline (`tecl replay --write-baseline`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from tecl_pipeline.core.performance import WEIGHT_TOLERANCE
from tecl_pipeline.core.portfolio import invested_share, round_price, to_decimal
from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.harness.world import World
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.simulator import FillMode
from tecl_pipeline.state.journal.records import SessionRecord
from tecl_pipeline.trading.models import Order, OrderSide

REPLAY_START = date(2021, 11, 29)
REPLAY_END = date(2026, 7, 31)
CENT = Decimal("0.01")


@dataclass
class Ledger:
    """Cash and shares rebuilt from fills alone, in Decimal (D6)."""

    cash: Decimal
    shares: dict[str, Decimal] = field(default_factory=dict)
    bought: Decimal = Decimal(0)
    sold: Decimal = Decimal(0)

    def apply(self, order: Order) -> None:
        """Cash moves by each fill's notional at the cent, as a broker settles it."""
        if order.filled_qty == 0 or order.filled_avg_price is None:
            return
        notional = order.filled_notional
        sign = 1 if order.side is OrderSide.BUY else -1
        self.shares[order.symbol] = self.shares.get(order.symbol, Decimal(0)) + sign * (
            order.filled_qty
        )
        if order.side is OrderSide.BUY:
            self.cash -= notional
            self.bought += notional
        else:
            self.cash += notional
            self.sold += notional

    def equity(self, prices: dict[str, Decimal]) -> Decimal:
        return self.cash + sum(
            (qty * prices[s] for s, qty in self.shares.items() if qty), Decimal(0)
        )


@dataclass(frozen=True)
class ReplaySummary:
    first_session: date
    last_session: date
    sessions: int
    runs_failed: int
    orders: int
    buys: int
    """Orders that bought (or sold) anything; `orders` counts every order sent."""
    sells: int
    bought: Decimal
    sold: Decimal
    final_cash: Decimal
    final_positions: dict[str, Decimal]
    final_equity: Decimal
    pnl: Decimal
    """Final equity less starting cash, from fills in Decimal, positions at the last close."""
    leaf_counts: dict[str, int]
    mismatches: tuple[str, ...]
    """Sessions whose run, journal or positions disagree with `signal_history`, and why."""

    def figures(self) -> dict[str, Any]:
        """The baseline's content: JSON-ready, money to the cent, quantities exact."""
        return {
            "first_session": self.first_session.isoformat(),
            "last_session": self.last_session.isoformat(),
            "sessions": self.sessions,
            "runs_failed": self.runs_failed,
            "orders": self.orders,
            "buys": self.buys,
            "sells": self.sells,
            "bought": str(self.bought.quantize(CENT)),
            "sold": str(self.sold.quantize(CENT)),
            "final_cash": str(self.final_cash.quantize(CENT)),
            "final_positions": {s: str(q) for s, q in sorted(self.final_positions.items())},
            "final_equity": str(self.final_equity.quantize(CENT)),
            "pnl": str(self.pnl.quantize(CENT)),
            "leaf_counts": dict(sorted(self.leaf_counts.items())),
            "mismatches": len(self.mismatches),
        }

    def describe(self) -> str:
        f = self.figures()
        return (
            f"replay {f['first_session']}..{f['last_session']}: sessions={f['sessions']} "
            f"runs_failed={f['runs_failed']} orders={f['orders']} (buys={f['buys']} "
            f"sells={f['sells']}) final_equity={f['final_equity']} pnl={f['pnl']} "
            f"mismatches={f['mismatches']}"
        )


def session_prices(closes: pd.DataFrame, session: date) -> dict[str, Decimal]:
    """The session's closes at the broker's tick: what the simulator fills at."""
    row = closes.loc[pd.Timestamp(session)]
    assert isinstance(row, pd.Series)  # one row: the index holds each session once
    return {s: round_price(to_decimal(float(row[s]), f"{s} close")) for s in HOLDINGS}


def check_session(
    record: SessionRecord | None,
    expected: pd.Series,
    prices: dict[str, Decimal],
    cash_reserve: Decimal,
) -> list[str]:
    """How the session's journal record departs from `signal_history`'s row (empty: none)."""
    if record is None:
        return ["no journal record"]
    problems = []
    if record.leaf != expected["leaf"]:
        problems.append(f"leaf {record.leaf}, signal_history says {expected['leaf']}")
    weights = {s: Decimal(expected[s]) for s in HOLDINGS if Decimal(expected[s])}
    recorded = {s: w for s, w in record.weights.items() if w}
    if recorded != weights:
        problems.append(f"weights {recorded}, signal_history says {weights}")
    return problems + holding_problems(record, weights, prices, cash_reserve)


def holding_problems(
    record: SessionRecord,
    weights: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    cash_reserve: Decimal,
) -> list[str]:
    """How the recorded positions miss `weights` (non-zero ones) at `prices`: what is held,
    and each holding's share of equity against its weight less the cash reserve."""
    problems = []
    held = {s for s, q in record.positions.items() if q}
    if held != set(weights):
        problems.append(f"holds {sorted(held)}, the target is {sorted(weights)}")
    if record.equity <= 0:
        return [*problems, f"equity {record.equity}"] if weights else problems
    for symbol, weight in weights.items():
        share = record.positions.get(symbol, Decimal(0)) * prices[symbol] / record.equity
        if abs(share - invested_share(weight, cash_reserve)) > WEIGHT_TOLERANCE:
            problems.append(f"{symbol} is {share:.4f} of equity, target {weight}")
    return problems


def replay(
    world: World,
    sessions: Iterable[date],
    *,
    cash_reserve: Decimal,
    progress: Callable[[date, int], None] | None = None,
) -> ReplaySummary:
    """Run every session through the pipeline and check it; the world's simulator must
    start empty at the first session's decision time."""
    sessions = list(sessions)
    # Fills at the session's close in the POST: the replay judges decisions over a thousand
    # sessions, not an order's life (the soak follows fills as Alpaca sends them).
    world.simulator.set_fill_mode(FillMode.IMMEDIATE)
    closes = CsvMarketData(world.market_dir).closes(SYMBOLS, sessions[-1])
    expected = signal_history(closes)
    ledger = Ledger(cash=world.starting_cash)
    leaves: Counter[str] = Counter()
    mismatches: list[str] = []
    runs_failed = orders = buys = sells = 0
    for number, session in enumerate(sessions, 1):
        world.set_clock(session)
        run = world.run(session)
        if not run.ok:
            runs_failed += 1
            mismatches.append(f"{session}: run {run.run_id} did not trade: {run.reason}")
            if progress is not None:
                progress(session, number)
            continue
        record = world.record(session)
        prices = session_prices(closes, session)
        row = expected.loc[pd.Timestamp(session)]
        assert isinstance(row, pd.Series)  # one row: the index holds each session once
        problems = check_session(record, row, prices, cash_reserve)
        mismatches += [f"{session}: {p}" for p in problems]
        if record is not None:
            leaves[record.leaf] += 1
            orders += len(record.orders)
            for order in record.orders:
                ledger.apply(order)
                buys += order.side is OrderSide.BUY and order.filled_qty > 0
                sells += order.side is OrderSide.SELL and order.filled_qty > 0
        if progress is not None:
            progress(session, number)
    last = sessions[-1]
    final_prices = session_prices(closes, last)
    equity = ledger.equity(final_prices)
    return ReplaySummary(
        first_session=sessions[0],
        last_session=last,
        sessions=len(sessions),
        runs_failed=runs_failed,
        orders=orders,
        buys=buys,
        sells=sells,
        bought=ledger.bought,
        sold=ledger.sold,
        final_cash=ledger.cash,
        final_positions={s: q for s, q in ledger.shares.items() if q},
        final_equity=equity,
        pnl=equity - world.starting_cash,
        leaf_counts=dict(leaves),
        mismatches=tuple(mismatches),
    )


def replay_sessions(start: date = REPLAY_START, end: date = REPLAY_END) -> list[date]:
    return CALENDAR.sessions(start, end)


def baseline_key(summary: ReplaySummary) -> str:
    return f"{summary.first_session}..{summary.last_session}"


def read_baseline(path: Path, key: str) -> dict[str, Any] | None:
    """The reviewed figures of one date range (`START..END`), None if it has none."""
    if not path.exists():
        return None
    entries: dict[str, Any] = json.loads(path.read_text())
    return entries.get(key)


def write_baseline(path: Path, summary: ReplaySummary) -> None:
    """Store (or replace) the range's figures; the other ranges' entries stay as they were."""
    entries = json.loads(path.read_text()) if path.exists() else {}
    entries[baseline_key(summary)] = summary.figures()
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")


def baseline_differences(baseline: dict[str, Any], figures: dict[str, Any]) -> list[str]:
    """Each figure that moved, as `name: baseline -> now`."""
    names = sorted(set(baseline) | set(figures))
    return [
        f"{name}: {baseline.get(name)!r} -> {figures.get(name)!r}"
        for name in names
        if baseline.get(name) != figures.get(name)
    ]
