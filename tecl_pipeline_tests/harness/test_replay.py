"""Replay of real history through the pipeline (R4, R5, D6).

`make test` replays the first 60 sessions of the range (2021-11-29 .. 2022-02-23: the first
purchase, bull and bear leaves, 52 orders) through `daily_trading_job` against the
simulator; `make replay` replays all 1,172 sessions to 2026-07-31 (10-20 minutes) and
checks them against the same reviewed baseline file.
"""

from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.resources import TradingPolicyResource
from tecl_pipeline.harness import replay as history
from tecl_pipeline.harness.world import World
from tecl_pipeline.state.journal.records import SessionRecord

BASELINE = Path(__file__).with_name("replay_baseline.json")
WINDOW_END = date(2022, 2, 23)


@dataclass(frozen=True)
class Replayed:
    summary: history.ReplaySummary
    records: dict[date, SessionRecord | None]
    broker: dict[str, Any]
    starting_cash: Fraction


@pytest.fixture(scope="module")
def replayed(market_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    sessions = history.replay_sessions(history.REPLAY_START, WINDOW_END)
    reserve = TradingPolicyResource().policy().cash_reserve
    work = tmp_path_factory.mktemp("replay")
    with World(work, market_dir, first_session=sessions[0]) as world:
        summary = history.replay(world, sessions, cash_reserve=reserve)
        records = {s: world.record(s) for s in sessions}
        broker = world.simulator.state()
        cash = Fraction(str(world.starting_cash))
    print(summary.describe())
    return Replayed(summary, records, broker, cash)


def test_replay_follows_signal_history_every_session(
    replayed: Replayed, real_closes: pd.DataFrame
) -> None:
    """Every session ran, and its journal record carries the leaf and weights that
    `signal_history` gives for that session, computed here from the raw files."""
    summary = replayed.summary
    assert summary.mismatches == ()
    assert summary.runs_failed == 0
    assert summary.sessions == len(replayed.records) == 60
    expected = signal_history(real_closes.loc[: pd.Timestamp(WINDOW_END)])
    leaves = []
    for session, record in replayed.records.items():
        assert record is not None, f"{session}: no journal record"
        when = pd.Timestamp(session)
        assert record.leaf == expected.at[when, "leaf"], session
        assert {s: w for s, w in record.weights.items() if w} == {
            s: expected.at[when, s] for s in HOLDINGS if expected.at[when, s]
        }, session
        leaves.append(record.leaf)
    # The window is worth replaying: the tree changes its mind in it.
    assert len(set(leaves)) >= 4
    # And the journal follows the broker from one session to the next: each record's
    # orders are exactly the broker's orders of that session.
    by_session: dict[str, set[str]] = {}
    for order in replayed.broker["orders"]:
        by_session.setdefault(order["client_order_id"][5:13], set()).add(order["client_order_id"])
    for session, record in replayed.records.items():
        assert record is not None
        ids = {o.client_order_id for o in record.orders}
        assert ids == by_session.get(f"{session:%Y%m%d}", set()), session


def _tick(close: float) -> Fraction:
    """The broker's tick, half-even, in exact rational arithmetic."""
    price = Fraction(str(close))
    step = Fraction(1, 100) if price >= 1 else Fraction(1, 10000)
    return round(price / step) * step


def test_replay_pnl_matches_independent_recomputation(
    replayed: Replayed, real_closes: pd.DataFrame
) -> None:
    """D6: the replay's Decimal P&L equals, to the cent, one rebuilt here with fractions
    from the broker's own order book (each fill settled at the cent) and the raw closes."""
    cash = replayed.starting_cash
    shares: dict[str, Fraction] = {}
    for order in replayed.broker["orders"]:
        qty = Fraction(order["filled_qty"])
        if not qty:
            continue
        notional = round(qty * Fraction(order["filled_avg_price"]) * 100) / Fraction(100)
        sign = 1 if order["side"] == "buy" else -1
        cash -= sign * notional
        shares[order["symbol"]] = shares.get(order["symbol"], Fraction(0)) + sign * qty
    last = real_closes.loc[pd.Timestamp(WINDOW_END)]
    assert isinstance(last, pd.Series)
    equity = cash + sum(q * _tick(float(last[s])) for s, q in shares.items())
    pnl = equity - replayed.starting_cash
    summary = replayed.summary
    assert abs(Fraction(str(summary.pnl)) - pnl) < Fraction(1, 200)
    # The broker's own cash agrees to the cent as well.
    assert Fraction(replayed.broker["cash"]) == round(cash * 100) / Fraction(100)
    assert abs(Fraction(str(summary.final_cash)) - cash) < Fraction(1, 200)


def test_replay_summary_matches_reviewed_baseline(replayed: Replayed) -> None:
    """R5: a change that moves any replay figure fails here until the reviewed baseline is
    updated with `tecl replay --end 2022-02-23 --baseline ... --write-baseline`."""
    key = history.baseline_key(replayed.summary)
    stored = history.read_baseline(BASELINE, key)
    assert stored is not None, f"{BASELINE} has no entry for {key}"
    assert history.baseline_differences(stored, replayed.summary.figures()) == []


def test_full_history_baseline_is_a_clean_replay() -> None:
    """The stored whole-range figures (checked by `make replay`) are of a replay that
    covered every session and matched `signal_history` on each."""
    key = f"{history.REPLAY_START}..{history.REPLAY_END}"
    stored = history.read_baseline(BASELINE, key)
    assert stored is not None, f"{BASELINE} has no entry for {key}"
    assert stored["sessions"] == len(CALENDAR.sessions(history.REPLAY_START, history.REPLAY_END))
    assert stored["mismatches"] == 0
    assert stored["runs_failed"] == 0
    assert sum(stored["leaf_counts"].values()) == stored["sessions"]


def test_baseline_differences_name_every_moved_figure() -> None:
    before = {"orders": 52, "pnl": "-6811.59", "sessions": 60}
    after = {"orders": 53, "pnl": "-6811.60", "sessions": 60}
    assert history.baseline_differences(before, after) == [
        "orders: 52 -> 53",
        "pnl: '-6811.59' -> '-6811.60'",
    ]
