"""What a session's run shows in the UI: orders once when this run sent all of them, both
tables when the session's orders at the broker differ, sentences instead of empty tables,
money as dollars, and a data problem shared by every symbol said once."""

from collections.abc import Mapping
from datetime import date

import pandas as pd
from dagster import DagsterInstance, MetadataValue

from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.defs.assets import SAME_ORDERS
from tecl_pipeline.defs.presentation import money

DEMO_SESSION = date(2026, 11, 24)
REAL_LAST_SESSION = date(2026, 7, 31)


def metadata(result, asset: str) -> Mapping[str, MetadataValue]:
    [materialization] = result.asset_materializations_for_node(asset)
    return materialization.metadata


def text(entries: Mapping[str, MetadataValue], key: str) -> str:
    value = entries[key].value
    assert isinstance(value, str), (key, value)
    return value


def test_a_run_that_sent_every_order_of_the_session_shows_them_once(run_daily):
    result = run_daily(DEMO_SESSION)

    assert result.success
    report = result.asset_value("executed_orders")
    assert report.sent and {o.id for o in report.sent} == {o.id for o in report.session_orders}
    shown = metadata(result, "executed_orders")
    orders = text(shown, "orders")
    for order in report.sent:
        assert orders.count(order.client_order_id) == 1
    assert text(shown, "session_orders") == SAME_ORDERS
    assert text(shown, "skipped") == "no skipped orders"
    # Money in the planned orders is dollars to the cent; equity stays a number to plot.
    planned = text(metadata(result, "target_allocation"), "planned_orders")
    for order in result.asset_value("target_allocation").broker_before.plan.orders:
        assert f"| {money(order.notional)} |" in planned
    assert isinstance(metadata(result, "target_allocation")["equity"].value, float)


def test_a_rerun_that_sent_nothing_shows_the_sessions_orders_apart(run_daily):
    first = run_daily(DEMO_SESSION)
    second = run_daily(DEMO_SESSION)

    assert first.success and second.success
    assert second.asset_value("executed_orders").sent == ()
    shown = metadata(second, "executed_orders")
    assert text(shown, "orders") == "no orders sent by this run"
    session_orders = text(shown, "session_orders")
    assert session_orders != SAME_ORDERS
    for order in first.asset_value("executed_orders").sent:
        assert order.client_order_id in session_orders
    assert text(metadata(second, "target_allocation"), "planned_orders").startswith(
        "no orders planned"
    )


def test_a_session_missing_from_every_file_is_one_finding_naming_every_symbol(run_daily, csv_dir):
    """The data end the session before: ten symbols, one stale-data finding. Each line of
    the run's event log (check results, the refusal each skipped check reports, the alert)
    says it once, naming all ten, and the check's table has one row."""
    folder = csv_dir(REAL_LAST_SESSION)
    for symbol in SYMBOLS:
        frame = pd.read_csv(folder / f"{symbol}.csv")
        frame.iloc[:-1].to_csv(folder / f"{symbol}.csv", index=False)
    instance = DagsterInstance.ephemeral()

    result = run_daily(REAL_LAST_SESSION, data_dir=folder, instance=instance)

    assert not result.success
    finding = f"stale: latest bar is 2026-07-30, expected session {REAL_LAST_SESSION}"
    checks = result.get_asset_check_evaluations()
    [fresh] = [c for c in checks if c.check_name == "market_data_fresh"]
    assert not fresh.passed
    assert fresh.description == (
        f"not trading session {REAL_LAST_SESSION}: {', '.join(SYMBOLS)}: {finding}"
    )
    table = text(fresh.metadata, "problems")
    assert table.count(finding) == 1
    records = instance.all_logs(result.run_id)
    lines = [r.user_message for r in records] + [
        r.dagster_event.message or "" for r in records if r.dagster_event is not None
    ]
    saying_it = [line for line in lines if "latest bar is" in line]
    assert saying_it, "the run's event log never names the stale data"
    for line in saying_it:
        assert line.count("latest bar is") == 1, line
