"""`tecl run --dry-run`: the run's chain to the plan, against whatever the settings point
at, with nothing sent, nothing journalled, no Dagster run recorded and no alert. The orders it
prints are the orders the run then sends."""

import logging
from datetime import timedelta

import pytest

from tecl_pipeline.app.preview import deployment, preview, report
from tecl_pipeline.config.settings import DataFeed
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.simulator import AccountKind, DataPlan
from tecl_pipeline.trading.errors import DataEntitlementError
from tecl_pipeline.trading.execution import execute
from tecl_pipeline.trading.models import OrderSide
from tecl_pipeline_tests.app.cli_helpers import paper_at, tecl
from tecl_pipeline_tests.simulator.simulator_fixtures import (
    SIM_SESSION,
    hold_bil,
    sim_state,
)

QUIET = logging.CRITICAL + 1


def submissions(simulator) -> list:
    return sim_state(simulator.url)["submissions"]


@pytest.mark.parametrize("kind", list(AccountKind), ids=lambda k: k.value)
def test_the_dry_run_lists_the_orders_the_run_then_sends(paper, simulator, tmp_path, kind):
    """Sells and buys alike, on every account kind: previewed, nothing reaches the broker;
    traded, the same orders (side, symbol, quantity, limit) go out."""
    simulator.simulator.set_account(kind=kind)
    hold_bil(simulator.url)  # the target then needs a sell as well as buys
    before = len(submissions(simulator))

    with (
        deployment(paper(), stderr_level=QUIET) as ready,
        ready.broker.connect(SIM_SESSION) as broker,
    ):
        planned = preview(ready.source, broker, ready.policy, SIM_SESSION)
        assert len(submissions(simulator)) == before, "a dry run sends nothing"
        assert not planned.refused and planned.timing is None
        assert {o.side for o in planned.orders} == {"sell", "buy"}

        traded = execute(
            broker,
            SIM_SESSION,
            planned.decision.allocation,
            planned.prices,
            ready.policy,
            calendar=CALENDAR,
        )

    sent = [(o.side.value, o.symbol, o.qty, o.limit_price) for o in traded.sent]
    assert sent == [(o.side, o.symbol, o.qty, o.limit_price) for o in planned.orders]
    for order in traded.sent:
        assert (order.limit_price is None) == (order.side is OrderSide.SELL)
    assert not (tmp_path / "state").exists(), "a dry run writes no journal"


def test_the_report_says_dry_run_and_names_what_would_refuse(paper, simulator):
    simulator.simulator.set_account(trading_blocked=True)

    with (
        deployment(paper(), stderr_level=QUIET) as ready,
        ready.broker.connect(SIM_SESSION) as broker,
    ):
        planned = preview(ready.source, broker, ready.policy, SIM_SESSION)

    text = report(planned)
    assert text.startswith(f"DRY RUN      session {SIM_SESSION}: nothing sent, no run recorded")
    assert planned.refused
    assert "refused      a run would send no order: account PA0SIMULATOR is blocked" in text
    assert submissions(simulator) == []


def test_a_dry_run_outside_the_window_still_plans_and_says_when_a_run_would_trade(paper, simulator):
    simulator.simulator.set_clock(CALENDAR.open_time(SIM_SESSION))

    with (
        deployment(paper(), stderr_level=QUIET) as ready,
        ready.broker.connect(SIM_SESSION) as broker,
    ):
        planned = preview(ready.source, broker, ready.policy, SIM_SESSION)

    assert planned.orders and not planned.refused
    assert planned.timing is not None and "outside session" in planned.timing
    assert "timing       a run started now would not trade: broker clock" in report(planned)


def test_a_dry_run_after_the_close_plans_on_the_sessions_last_prices(paper, simulator):
    simulator.simulator.set_clock(CALENDAR.close_time(SIM_SESSION) + timedelta(hours=3))

    with (
        deployment(paper(), stderr_level=QUIET) as ready,
        ready.broker.connect(SIM_SESSION) as broker,
    ):
        planned = preview(ready.source, broker, ready.policy, SIM_SESSION)

    assert planned.orders and not planned.refused, planned.problems
    assert planned.timing is not None and "outside session" in planned.timing


def test_a_configuration_error_in_a_dry_run_is_one_line_and_no_alert(tmp_path):
    done = tecl(["run", "--dry-run"], tmp_path, TECL_MODE="paper")

    assert done.returncode == 1
    assert done.stderr.strip() == (
        "tecl: configuration error: ALPACA_API_KEY is not set; ALPACA_SECRET_KEY is not set"
    )
    assert list(tmp_path.rglob("alerts.jsonl")) == []


def test_demo_dry_run_then_run_sends_exactly_the_listed_orders_and_leaves_no_trace(tmp_path):
    """From the command line, in demo mode on a fresh directory: the dry run records no
    Dagster run, writes no journal and raises no alert; the run that follows sends the orders
    the dry run listed."""
    dry = tecl(["run", "--dry-run"], tmp_path)

    assert dry.returncode == 0, dry.stderr
    assert dry.stderr == ""
    assert dry.stdout.startswith("DRY RUN      session ")
    assert not (tmp_path / ".dagster").exists()
    # The embedded simulator keeps its account in .tecl/state/demo-broker, as for a run.
    assert not (tmp_path / ".tecl" / "state" / "journal").exists()
    assert not (tmp_path / ".tecl" / "logs" / "alerts.jsonl").exists()
    listed = [
        line.split()[:4]
        for line in dry.stdout.splitlines()
        if line.startswith(("  buy ", "  sell "))
    ]
    assert listed, dry.stdout

    run = tecl(["run"], tmp_path)

    assert run.returncode == 0, run.stderr
    sent = [
        line.split()[:4]
        for line in run.stdout.splitlines()
        if line.startswith(("  buy ", "  sell "))
    ]
    assert sent == listed


def test_a_feed_the_plan_lacks_is_a_refusal_in_one_line(tmp_path, simulator_process):
    done = tecl(
        ["run", "--dry-run", "--session", "2026-11-24"],
        tmp_path,
        **paper_at(simulator_process, TECL_DATA_FEED="sip"),
    )

    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("tecl: refused to trade (dry run): ")
    assert "TECL_DATA_FEED=iex" in line


def test_refused_keys_are_an_error_in_one_line_without_the_secret(tmp_path, simulator_process):
    done = tecl(
        ["run", "--dry-run", "--session", "2026-11-24"],
        tmp_path,
        **paper_at(simulator_process, ALPACA_SECRET_KEY="not-the-secret"),
    )

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("tecl: error (dry run): ") and "401" in line
    assert "not-the-secret" not in done.stdout + done.stderr


@pytest.mark.parametrize("plan", list(DataPlan), ids=lambda p: p.value)
@pytest.mark.parametrize("feed", list(DataFeed), ids=lambda f: f.value)
def test_each_data_plan_and_feed(paper, simulator, plan, feed):
    """IEX and delayed SIP work on every plan, real-time SIP at decision time only on a plan
    that includes it; the report says how the prices were formed and how old they are."""
    simulator.simulator.set_data_plan(plan)

    with deployment(paper(data_feed=feed), stderr_level=QUIET) as ready:
        refused = feed is DataFeed.SIP and plan is DataPlan.BASIC
        with ready.broker.connect(SIM_SESSION) as broker:
            if refused:
                with pytest.raises(DataEntitlementError, match="TECL_DATA_FEED=iex"):
                    preview(ready.source, broker, ready.policy, SIM_SESSION)
            else:
                planned = preview(ready.source, broker, ready.policy, SIM_SESSION)
                assert planned.orders and not planned.refused
                assert f"feed {feed.value}" in planned.market_data
                age = "15.0" if feed is DataFeed.DELAYED_SIP else "0.0"
                assert f"on {feed.value}, {age} min old" in report(planned)
    assert submissions(simulator) == []
