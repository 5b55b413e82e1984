"""Shared fixtures: real market data from ../shared, isolated state, runs of the daily job."""

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, ExecuteInProcessResult

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline_tests.market_history import read_symbol, shared_market_dir
from tecl_pipeline_tests.scheduling import SLOWEST_MODULES

pytest_plugins = [
    "tecl_pipeline_tests.simulator.simulator_fixtures",
    "tecl_pipeline_tests.adapters.aws.moto_fixtures",
    "tecl_pipeline_tests.seeding",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return SLOWEST_MODULES.index(module) if module in SLOWEST_MODULES else len(SLOWEST_MODULES)

    items.sort(key=rank)  # stable: every module keeps its own order


@pytest.fixture(scope="session")
def market_dir() -> Path:
    path = shared_market_dir()
    if not path.is_dir():
        pytest.skip(f"real market data not found at {path} (set TECL_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def real_closes(market_dir: Path) -> pd.DataFrame:
    """The ten symbols' real adjusted closes, NaN before each symbol's first bar."""
    return pd.concat([read_symbol(market_dir, s) for s in SYMBOLS], axis=1).sort_index()


@pytest.fixture
def csv_dir(tmp_path: Path, market_dir: Path) -> Callable[..., Path]:
    """A private replay folder made from the real files, cut at `through`, for tampering."""

    def make(through: date, symbols: tuple[str, ...] = SYMBOLS) -> Path:
        folder = tmp_path / f"market-{through}"
        folder.mkdir(exist_ok=True)
        for symbol in symbols:
            frame = pd.read_csv(market_dir / f"{symbol}.csv")
            frame[frame["date"] <= through.isoformat()].to_csv(
                folder / f"{symbol}.csv", index=False
            )
        return folder

    return make


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def run_daily(state_dir: Path) -> Callable[..., ExecuteInProcessResult]:
    """Run daily_trading_job for a session on an ephemeral instance; never raises."""

    def run(
        session: date,
        data_dir: Path | None = None,
        instance: DagsterInstance | None = None,
    ) -> ExecuteInProcessResult:
        settings = Settings(state_uri=state_dir.as_uri(), data_dir=data_dir)
        job = build_definitions(settings).resolve_job_def("daily_trading_job")
        return job.execute_in_process(
            partition_key=session.isoformat(),
            instance=instance or DagsterInstance.ephemeral(),
            raise_on_error=False,
        )

    return run
