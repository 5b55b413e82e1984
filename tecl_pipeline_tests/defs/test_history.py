"""History side: the signals table, a full-history backfill from an empty instance, the backtest.

The backfill runs on the default local SQLite instance in a temporary DAGSTER_HOME (the
instance the 60 s budget is about), over CSV replay of the real data. Elapsed time is
printed, never asserted: speed is measured by benchmarks, not by timed assertions.
"""

import sqlite3
import time
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, Definitions, MetadataValue, TableMetadataValue

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.backtest import FIGURE_HEADERS
from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import HOLDINGS
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.history import (
    BACKTEST_PNG,
    HISTORY_ASSETS,
    HISTORY_DB,
    HISTORY_JOB,
    history_partition_keys,
    run_backfill,
    signal_history_job,
)
from tecl_pipeline.state.history_store import Provenance, read_signals, replace_range, write_signals

FIRST_REAL_SESSION = pd.Timestamp("2021-11-29")
LAST_REAL_SESSION = pd.Timestamp("2026-07-31")
TABLE = AssetKey("signal_history_table")


def history_definitions(settings: Settings) -> Definitions:
    """The project's Definitions with the history assets, whether or not they are registered
    in build_definitions yet (registering them must not break these tests)."""
    defs = build_definitions(settings)
    if any(job.name == HISTORY_JOB for job in defs.jobs or ()):
        return defs
    return Definitions.merge(
        defs, Definitions(assets=list(HISTORY_ASSETS), jobs=[signal_history_job])
    )


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[DagsterInstance]:
    """An EMPTY default local instance (SQLite event log, run and schedule storage)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as fresh:
        yield fresh


@pytest.fixture
def replay(tmp_path: Path, market_dir: Path) -> tuple[Definitions, Path]:
    local = tmp_path / "state"
    defs = history_definitions(Settings(state_uri=local.as_uri(), data_dir=market_dir))
    return defs, local / HISTORY_DB


@pytest.fixture(scope="module")
def expected(real_closes: pd.DataFrame) -> pd.DataFrame:
    return signal_history(real_closes)


def assert_same_signals(stored: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(stored.columns) == ["leaf", *HOLDINGS]
    assert list(stored.index) == list(expected.index)
    assert list(stored["leaf"]) == list(expected["leaf"])
    for holding in HOLDINGS:
        assert all(type(w) is Decimal for w in stored[holding]), holding
        # Decimal equality, row by row: exact, as signal_history gave them.
        assert list(stored[holding]) == list(expected[holding]), holding


def period(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """The sessions of `frame` in a period such as "2024" or "2024-03" (partial-string
    indexing on the session index, which always selects rows)."""
    rows = frame.loc[label]
    assert isinstance(rows, pd.DataFrame)
    return rows


def text(metadata: Mapping[str, MetadataValue], key: str) -> str:
    value = metadata[key].value
    assert isinstance(value, str), (key, value)
    return value


# --- the table on its own ------------------------------------------------------------------

PROVENANCE = Provenance(computed_at="2026-01-01T00:00:00+00:00", data_source="test")


def test_table_round_trips_exact_decimals_and_is_plain_sql(
    tmp_path: Path, expected: pd.DataFrame
) -> None:
    path = tmp_path / HISTORY_DB
    part = period(expected, "2024")
    assert write_signals(path, part, PROVENANCE) == len(part)
    assert_same_signals(read_signals(path), part)
    assert_same_signals(
        read_signals(path, date(2024, 3, 1), date(2024, 3, 31)), period(part, "2024-03")
    )
    # Queryable without this package: weights are exact decimal strings.
    with sqlite3.connect(path) as plain:
        leaf, tecl, bil = plain.execute(
            "SELECT leaf, TECL, BIL FROM signals WHERE session = ?",
            (part.index[0].date().isoformat(),),
        ).fetchone()
    assert (leaf, Decimal(tecl), Decimal(bil)) == (
        part["leaf"].iloc[0],
        part["TECL"].iloc[0],
        part["BIL"].iloc[0],
    )


def test_replacing_a_range_is_idempotent_and_leaves_other_sessions(
    tmp_path: Path, expected: pd.DataFrame
) -> None:
    path = tmp_path / HISTORY_DB
    write_signals(path, expected, PROVENANCE)
    for _ in range(2):
        replace_range(
            path, period(expected, "2023"), date(2023, 1, 1), date(2024, 1, 1), PROVENANCE
        )
    assert_same_signals(read_signals(path), expected)
    with pytest.raises(ValueError, match="outside"):
        replace_range(
            path, period(expected, "2023"), date(2023, 1, 1), date(2023, 6, 1), PROVENANCE
        )


def test_a_missing_table_reads_empty(tmp_path: Path) -> None:
    empty = read_signals(tmp_path / "nothing.sqlite")
    assert empty.empty and list(empty.columns) == ["leaf", *HOLDINGS]


def test_partition_keys_cover_the_requested_dates(instance: DagsterInstance) -> None:
    keys = history_partition_keys(date(2021, 11, 1), date(2023, 2, 1), instance)
    assert keys == ["2021", "2022", "2023"]
    with pytest.raises(ValueError, match="after"):
        history_partition_keys(date(2024, 1, 2), date(2024, 1, 1), instance)


# --- backfill through Dagster ------------------------------------------------------------


def test_full_history_backfill_from_an_empty_instance_equals_signal_history(
    instance: DagsterInstance, replay: tuple[Definitions, Path], expected: pd.DataFrame
) -> None:
    defs, table = replay
    assert instance.get_materialized_partitions(TABLE) == set()
    began = time.perf_counter()
    summary = run_backfill(date(2019, 1, 1), date(2026, 12, 31), instance=instance, defs=defs)
    elapsed = time.perf_counter() - began
    print(f"\nfull-history backfill, empty local instance: {elapsed:.2f} s; {summary.describe()}")

    assert summary.success
    assert summary.partitions[0] == "2019" and len(summary.partitions) >= 8
    # Every partition of the run is recorded in the instance, from one run.
    assert instance.get_materialized_partitions(TABLE) == set(summary.partitions)
    stored = read_signals(table)
    assert stored.index[0] == FIRST_REAL_SESSION and stored.index[-1] == LAST_REAL_SESSION
    assert summary.rows_in_range == len(stored) == len(expected)
    assert_same_signals(stored, expected)


def test_rerunning_a_range_is_idempotent(
    instance: DagsterInstance, replay: tuple[Definitions, Path], expected: pd.DataFrame
) -> None:
    defs, table = replay
    run_backfill(date(2021, 1, 1), date(2026, 12, 31), instance=instance, defs=defs)
    first = read_signals(table, with_provenance=True)
    again = run_backfill(date(2024, 3, 1), date(2024, 6, 30), instance=instance, defs=defs)
    assert again.success and again.partitions == ("2024",)
    assert again.first_session == date(2024, 3, 1) and again.last_session == date(2024, 6, 28)
    second = read_signals(table, with_provenance=True)
    assert_same_signals(second.loc[:, ["leaf", *HOLDINGS]], expected)
    with sqlite3.connect(table) as plain:
        sessions = plain.execute("SELECT COUNT(*), COUNT(DISTINCT session) FROM signals")
        assert sessions.fetchone() == (len(expected), len(expected))
    # Only the re-run year was rewritten.
    rewritten = second["run_id"] != first["run_id"]
    sessions = second.index
    assert isinstance(sessions, pd.DatetimeIndex)
    assert set(sessions[rewritten].year) == {2024}
    assert rewritten.sum() == len(period(expected, "2024"))


def test_backtest_asset_after_a_backfill(
    instance: DagsterInstance, replay: tuple[Definitions, Path], expected: pd.DataFrame
) -> None:
    defs, table = replay
    run_backfill(date(2021, 1, 1), date(2026, 12, 31), instance=instance, defs=defs)
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, asset_selection=[AssetKey("backtest")])
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    # A table value: the UI draws it in place at any size, where a markdown value of 1,000
    # characters or more sits behind "[Show Markdown]" (ui-core MetadataEntry.tsx).
    figures = metadata["figures"]
    assert isinstance(figures, TableMetadataValue)
    assert [column.name for column in figures.schema.columns] == list(FIGURE_HEADERS)
    rows = {record.data["series"]: record.data for record in figures.records}
    assert {"strategy", "TECL", "SPY"} <= rows.keys()
    assert rows["strategy"]["CAGR"] == f"{metadata['cagr'].value:.2%}"
    assert text(metadata, "plot").startswith("![backtest equity](data:image/png;base64,")
    assert Path(text(metadata, "plot_path")) == table.parent / BACKTEST_PNG
    assert (table.parent / BACKTEST_PNG).read_bytes().startswith(b"\x89PNG")
    convention = text(metadata, "convention")
    assert "next close" in convention or "t+1" in convention
    assert metadata["holding_periods"].value == len(expected) - 1
    assert metadata["sessions_missing_from_table"].value == 0
    assert metadata["cost_bps"].value == 0


def test_backtest_without_history_fails_clearly(
    instance: DagsterInstance, replay: tuple[Definitions, Path]
) -> None:
    defs, _ = replay
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=[AssetKey("backtest")], raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "materialize (backfill) signal_history_table first" in str(failure)
