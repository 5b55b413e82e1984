"""B6: one tolerance, one rule. A residual that execution left on purpose (below the minimum
trade) is not a shortfall: post_trade_reconciled passes and the residuals sensor stays
silent; one worth a trade is reported by both."""

from datetime import date
from decimal import Decimal

from dagster import DagsterInstance, build_sensor_context

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.portfolio import plan_rebalance
from tecl_pipeline.defs.sensors.residuals import build_residuals_sensor
from tecl_pipeline.trading.reconcile import post_trade_problems, residuals
from tecl_pipeline_tests.failure_modes.helpers import run_session
from tecl_pipeline_tests.observability.helpers import CapturedAlerts, CaptureSink

SESSION = date(2026, 11, 24)
PRICE = Decimal("50")
MINIMUM = Decimal("10")


def skipped_by_execution(held: Decimal) -> bool:
    """Whether planning from `held` TECL towards 100 (all equity at $50) skips the trade."""
    plan = plan_rebalance(
        {"TECL": held},
        {"TECL": Decimal(1)},
        Decimal("5000"),
        Decimal("5000"),  # ample cash: only the minimum trade can stop a buy
        {"TECL": PRICE},
        {"TECL": True},
        min_trade_notional=MINIMUM,
    )
    assert plan.targets["TECL"] == Decimal(100)
    if plan.orders:
        return False
    [(symbol, reason)] = plan.skipped
    assert symbol == "TECL" and "below the minimum trade notional" in reason
    return True


def test_execution_and_reconciliation_judge_a_residual_by_the_same_rule():
    """Around the $10 minimum (both sides, rounding to the cent included), a difference that
    execution skips is exactly one that reconciliation accepts, and vice versa."""
    outcomes = []
    for gap in ("0.1", "0.19", "0.1999", "0.19999999", "0.2", "0.2000001", "0.21", "3"):
        for side in (1, -1):
            held = Decimal(100) - side * Decimal(gap)
            left = residuals({"TECL": Decimal(100)}, {"TECL": held}, {"TECL": PRICE}, MINIMUM)
            problems = post_trade_problems(
                {"TECL": Decimal(100)},
                {"TECL": held},
                {"TECL": PRICE},
                [],
                min_trade_notional=MINIMUM,
            )
            skipped = skipped_by_execution(held)
            assert skipped == (left.open == ()) == (problems == []), (gap, side)
            assert [r.symbol for r in (left.below_minimum if skipped else left.open)] == ["TECL"]
            outcomes.append(skipped)
    assert True in outcomes and False in outcomes


def test_residual_below_the_minimum_trade_passes_reconciliation_and_never_alerts(tmp_path):
    """A real run: the session traded to its target, then re-run with a slightly larger
    cash reserve and a $500 minimum trade. The small sells that would move it are skipped
    on purpose; post_trade_positions shows them as below the minimum, not as residuals;
    post_trade_reconciled passes; the residuals sensor alerts nothing."""
    settings = Settings(state_uri=(tmp_path / "state").as_uri())
    instance = DagsterInstance.ephemeral()
    first = run_session(settings, SESSION, instance=instance)
    assert first.success and first.asset_value("executed_orders").sent

    policy = {"cash_reserve": "0.006", "min_trade_notional": "500"}
    again = run_session(settings, SESSION, resources={"trading_policy": policy}, instance=instance)

    assert again.success
    report = again.asset_value("executed_orders")
    assert report.sent == ()
    assert report.skipped and all("below the minimum" in why for _, why in report.skipped)
    after = again.asset_value("post_trade_positions")
    assert after.residuals == {}
    assert set(after.residuals_below_minimum) == {symbol for symbol, _ in report.skipped}
    assert all(qty < 0 for qty in after.residuals_below_minimum.values())
    [reconciled] = [
        c for c in again.get_asset_check_evaluations() if c.check_name == "post_trade_reconciled"
    ]
    assert reconciled.passed, reconciled.description
    sink = CaptureSink()
    sensor = build_residuals_sensor()
    data = sensor.evaluate_tick(
        build_sensor_context(
            instance=instance, sensor_name=sensor.name, resources={"alerts": CapturedAlerts(sink)}
        )
    )
    assert data.cursor is not None  # both materializations were read ...
    assert sink.sent == []  # ... and neither had a residual worth a trade
