"""Checks say what happened: "not checked" is not a pass, and the checks a refused session
never ran say that the session was refused and why, not a bare "Execution failed".

Read back from the instance's check records, which is what the UI's Checks tab shows."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    DagsterInstance,
)

# Private: the check record's status (what the UI's Checks tab shows) has no public export.
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

DEMO_SESSION = date(2026, 11, 24)
REAL_LAST_SESSION = date(2026, 7, 31)
CHECKS = {
    "market_data_fresh": "market_data",
    "market_data_sane": "market_data",
    "signal_parity": "signal",
    "pre_trade_ready": "target_allocation",
    "post_trade_reconciled": "post_trade_positions",
}


@dataclass(frozen=True)
class CheckRecord:
    """What the UI's Checks tab shows of a check's latest execution."""

    status: AssetCheckExecutionRecordStatus
    evaluation: AssetCheckEvaluation
    description: str


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def latest_check(instance: DagsterInstance, name: str) -> CheckRecord:
    """The check's latest execution: one that recorded no evaluation or no description
    says nothing to a person, and fails here."""
    key = AssetCheckKey(AssetKey(CHECKS[name]), name)
    [record] = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
    evaluation = record.evaluation
    assert evaluation is not None, name
    assert evaluation.description is not None, name
    return CheckRecord(record.status, evaluation, evaluation.description)


def test_signal_parity_without_a_history_row_is_not_checked_rather_than_passed(run_daily, instance):
    """No history row for the session: signal_parity says it did not check (a warning with
    the reason and the way to get the row), never green; the run still trades."""
    result = run_daily(DEMO_SESSION, instance=instance)

    assert result.success
    record = latest_check(instance, "signal_parity")
    evaluation = record.evaluation
    assert record.status == AssetCheckExecutionRecordStatus.FAILED
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
    assert record.description.startswith("not checked: no history row for session 2026-11-24")
    assert "tecl backfill" in record.description
    assert evaluation.metadata["checked"].value is False


def test_checks_of_a_session_refused_by_a_blocking_check_say_it_was_refused(
    run_daily, csv_dir, instance
):
    """A stale symbol fails market_data_fresh: the checks downstream that never ran each
    say "session refused: <the reason>", naming the symbol and date."""
    folder = csv_dir(REAL_LAST_SESSION)
    kmlm = pd.read_csv(folder / "KMLM.csv")
    kmlm.iloc[:-1].to_csv(folder / "KMLM.csv", index=False)

    result = run_daily(REAL_LAST_SESSION, data_dir=folder, instance=instance)

    assert not result.success
    fresh = latest_check(instance, "market_data_fresh")
    assert not fresh.evaluation.passed and fresh.evaluation.severity == AssetCheckSeverity.ERROR
    assert not fresh.description.startswith("session refused")
    for name in ("signal_parity", "pre_trade_ready", "post_trade_reconciled"):
        record = latest_check(instance, name)
        assert record.status == AssetCheckExecutionRecordStatus.FAILED, name
        evaluation = record.evaluation
        assert evaluation.partition == REAL_LAST_SESSION.isoformat()
        assert evaluation.severity == AssetCheckSeverity.WARN
        assert record.description.startswith("session refused: "), record.description
        assert "KMLM" in record.description and "2026-07-30" in record.description
        assert evaluation.metadata["checked"].value is False


def test_checks_of_a_session_refused_by_an_asset_say_it_was_refused(run_daily, csv_dir, instance):
    """A symbol's file is missing: market_data refuses, and every check of the run, its
    own included, says the session was refused and why."""
    folder = csv_dir(REAL_LAST_SESSION)
    (folder / "BSV.csv").unlink()

    result = run_daily(REAL_LAST_SESSION, data_dir=folder, instance=instance)

    assert not result.success
    for name in CHECKS:
        record = latest_check(instance, name)
        assert record.status == AssetCheckExecutionRecordStatus.FAILED, name
        assert record.description.startswith("session refused: "), name
        assert "BSV" in record.description


def test_a_refused_partial_materialization_speaks_only_for_its_own_checks(
    state_dir, csv_dir, instance
):
    """Materializing market_data alone (as from the asset graph) on missing data: its own
    checks say the session was refused; checks of assets the run never planned get nothing."""
    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.definitions import build_definitions

    folder = csv_dir(REAL_LAST_SESSION)
    (folder / "BSV.csv").unlink()
    settings = Settings(state_uri=state_dir.as_uri(), data_dir=folder)
    job = build_definitions(settings).resolve_job_def("daily_trading_job")

    result = job.execute_in_process(
        partition_key=REAL_LAST_SESSION.isoformat(),
        instance=instance,
        asset_selection=[AssetKey("market_data")],
        raise_on_error=False,
    )

    assert not result.success
    for name in ("market_data_fresh", "market_data_sane"):
        assert latest_check(instance, name).description.startswith("session refused")
    for name in ("signal_parity", "pre_trade_ready", "post_trade_reconciled"):
        key = AssetCheckKey(AssetKey(CHECKS[name]), name)
        assert instance.event_log_storage.get_asset_check_execution_history(key, limit=1) == []
