"""Runs say what they were, as tags the UI's Runs page filters by: the mode, the market
data, the strategy's leaf and how the run ended (traded, nothing to do, refused, stopped,
error), whoever started them. Refusals and errors never look alike."""

from decimal import Decimal

import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRun

from tecl_pipeline.core.portfolio import PlannedOrder, RebalancePlan
from tecl_pipeline.defs.run_tags import (
    DATA_SOURCE_TAG,
    LEAF_TAG,
    MODE_TAG,
    OUTCOME_TAG,
    OutcomeLabel,
    trading_outcome,
)
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.trading.execution import ExecutionReport
from tecl_pipeline.trading.models import Order, OrderStatus
from tecl_pipeline_tests.app.cli_helpers import REAL_LAST_SESSION, tecl
from tecl_pipeline_tests.trading.test_models import order


def runs(cwd) -> list[DagsterRun]:
    """The project's runs, oldest first."""
    instance = DagsterInstance.from_config(str(cwd / ".dagster"))
    return list(reversed(instance.get_runs()))


def test_a_session_traded_then_run_again_is_traded_then_nothing_to_do(tmp_path, csv_dir):
    folder = csv_dir(REAL_LAST_SESSION)
    session = ["run", "--session", REAL_LAST_SESSION.isoformat()]
    first = tecl(session, tmp_path, TECL_DATA_DIR=str(folder))
    second = tecl(session, tmp_path, TECL_DATA_DIR=str(folder))

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    traded, again = runs(tmp_path)
    record = LocalJournal(tmp_path / ".tecl" / "state" / "journal").latest(REAL_LAST_SESSION)
    assert record is not None
    for run in (traded, again):
        assert run.tags[MODE_TAG] == "demo"
        assert run.tags[DATA_SOURCE_TAG] == "csv"
        assert run.tags[LEAF_TAG] == record.leaf
    assert traded.tags[OUTCOME_TAG] == OutcomeLabel.TRADED
    assert again.tags[OUTCOME_TAG] == OutcomeLabel.NOTHING_TO_DO


def test_a_refusal_is_tagged_refused_before_any_leaf(tmp_path, csv_dir):
    folder = csv_dir(REAL_LAST_SESSION)
    tqqq = pd.read_csv(folder / "TQQQ.csv")
    tqqq.iloc[:-2].to_csv(folder / "TQQQ.csv", index=False)

    done = tecl(
        ["run", "--session", REAL_LAST_SESSION.isoformat()], tmp_path, TECL_DATA_DIR=str(folder)
    )

    assert done.returncode == 2, done.stderr
    [run] = runs(tmp_path)
    assert run.tags[OUTCOME_TAG] == OutcomeLabel.REFUSED
    assert (run.tags[MODE_TAG], run.tags[DATA_SOURCE_TAG]) == ("demo", "csv")
    assert LEAF_TAG not in run.tags


def report(sent: tuple[Order, ...] = (), *, planned: bool = True, skipped=()) -> ExecutionReport:
    buys = (PlannedOrder("TECL", "buy", Decimal("3"), Decimal("100")),) if planned else ()
    plan = RebalancePlan(targets={"TECL": Decimal("3")}, sells=(), buys=buys)
    return ExecutionReport(
        session=REAL_LAST_SESSION,
        broker="test",
        plan=plan,
        sent=sent,
        skipped=tuple(skipped),
        session_orders=sent,
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (report((order(filled_qty=Decimal("3"), status=OrderStatus.FILLED),)), "traded"),
        (report((order(filled_qty=Decimal("1"), status=OrderStatus.CANCELED),)), "traded"),
        (report(planned=False), "nothing_to_do"),
        (report((order(status=OrderStatus.REJECTED),)), "not_clean"),
        (report(planned=False, skipped=[("TECL", "not tradable")]), "not_clean"),
        (report(), "not_clean"),
    ],
    ids=["filled", "part filled", "at target", "rejected", "skipped", "not sent"],
)
def test_a_run_that_reached_its_positions_says_whether_it_traded(case, expected):
    """Traded only when an order of the run filled; nothing to do only when none was
    needed; otherwise the session needed orders and got none (not clean)."""
    assert trading_outcome(case) == expected
