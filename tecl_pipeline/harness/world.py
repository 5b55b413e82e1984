"""A simulated trading world: the broker simulator serving the Alpaca API over HTTP, a
journal, and `daily_trading_job` run in process, one session after another, as the schedule
would run it. The replay of history and the chaos soak both drive the real pipeline
through it; nothing in here decides anything the pipeline decides.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.run_report import EXIT_OK
from tecl_pipeline.marketdata.csv_source import CsvMarketData
from tecl_pipeline.simulator import BrokerSimulator, FillMode, SimulatorServer
from tecl_pipeline.state.journal.records import SessionRecord

if TYPE_CHECKING:
    from dagster import DagsterInstance, JobDefinition

    from tecl_pipeline.state.journal.base import JournalStore

STARTING_CASH = Decimal("100000")


@dataclass(frozen=True)
class SessionRun:
    """One run of the daily job: how it ended and, unless it traded, why."""

    session: date
    run_id: str
    exit_code: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK


def write_market_dir(closes: Any, folder: Path) -> Path:
    """`folder/<SYMBOL>.csv` (date, adj_close) from a frame of closes, one file per column."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol in closes.columns:
        series = closes[symbol].dropna()
        frame = series.rename("adj_close").to_frame()
        frame.index = [stamp.date().isoformat() for stamp in series.index]
        frame.to_csv(folder / f"{symbol}.csv", index_label="date")
    return folder


class World:
    """The simulator on a loopback port and the pipeline configured to trade against it.

    `policy` is the trading policy's config (decimal strings and seconds, as in the launchpad);
    `broker` extra config of the broker resource (e.g. its retry backoff).
    """

    def __init__(
        self,
        work_dir: Path,
        market_dir: Path,
        *,
        first_session: date,
        starting_cash: Decimal = STARTING_CASH,
        state_uri: str | None = None,
        secret_id: str | None = None,
        environ: Mapping[str, str] | None = None,
        policy: Mapping[str, Any] | None = None,
        broker: Mapping[str, Any] | None = None,
        fills: FillMode = FillMode.ASYNC,
    ) -> None:
        self.work_dir = work_dir
        self.market_dir = market_dir
        self.starting_cash = starting_cash
        self.fills = fills
        clock: list[BrokerSimulator] = []
        self._runs = 0
        self.simulator = BrokerSimulator(
            CsvMarketData(market_dir),
            CALENDAR,
            starting_cash=starting_cash,
            now=CALENDAR.decision_time(first_session),
            # Alpaca's 200 requests a minute per key, the minutes counted on the simulated
            # clock (which stands at each session's decision time), a new one for each run:
            # every run must keep within one minute's budget, and hundreds of sessions still
            # run in a real minute.
            wall_clock=lambda: clock[0].now.timestamp() + 60 * self._runs,
            fills=fills,
        )
        clock.append(self.simulator)
        self.server = SimulatorServer(self.simulator).start()
        self._environ = dict(environ or {})
        self._state_uri = state_uri or (work_dir / "state").as_uri()
        self._secret_id = secret_id
        self._run_config: dict[str, Any] = {
            # The drill reads outcomes from the result; Dagster's console stays quiet.
            "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
        }
        self._resource_config = {"trading_policy": dict(policy or {}), "broker": dict(broker or {})}
        self._jobs: dict[Path, JobDefinition] = {}
        self._journal: JournalStore | None = None
        self._instance: DagsterInstance | None = None

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None
        self.server.stop()

    def settings_for(self, market_dir: Path) -> Settings:
        # Where the secret is, as the child processes' environment says (the AWS clients
        # read the rest of it themselves).
        aws = Settings.from_env(self._environ, cwd=self.work_dir)
        return Settings(
            aws_region=aws.aws_region,
            aws_region_var=aws.aws_region_var,
            secrets_endpoint_url=aws.secrets_endpoint_url,
            data_dir=market_dir,
            state_uri=self._state_uri,
            broker_url=self.server.url,
            local_dir=self.work_dir / "local",
            log_dir=self.work_dir / "logs",
            secret_id=self._secret_id,
        )

    def environment(self, market_dir: Path | None = None) -> dict[str, str]:
        """TECL_* variables that point a `tecl run` process at this world."""
        settings = self.settings_for(market_dir or self.market_dir)
        return {
            **self._environ,
            "TECL_MODE": "demo",
            "TECL_DATA_DIR": str(settings.data_dir),
            "TECL_STATE_URI": settings.state_uri,
            "TECL_BROKER_URL": self.server.url,
            "TECL_LOCAL_DIR": str(settings.local_dir),
            "TECL_LOG_DIR": str(settings.log_dir),
            **({"TECL_SECRET_ID": self._secret_id} if self._secret_id else {}),
        }

    def _job(self, market_dir: Path) -> JobDefinition:
        if market_dir not in self._jobs:
            from tecl_pipeline.definitions import build_definitions

            # The steps' outputs in the world's instance, cleared after every session; the
            # soak's faults are for the journal's S3, not for Dagster's storage.
            defs = build_definitions(
                self.settings_for(market_dir),
                resource_config=self._resource_config,
                shared_outputs=False,
            )
            self._jobs[market_dir] = defs.resolve_job_def("daily_trading_job")
        return self._jobs[market_dir]

    def set_clock(self, session: date) -> None:
        """The simulator's clock at the session's decision time, as the schedule fires."""
        self.simulator.set_clock(CALENDAR.decision_time(session))

    def run(self, session: date, *, market_dir: Path | None = None) -> SessionRun:
        """`daily_trading_job` for the session, in process, on the world's ephemeral instance.

        One instance for every session, not a new one each: setting one up costs as much as
        a sixth of a session. Each session starts from the pipeline's own state: once its
        outcome is read, the run and its events are deleted and the steps' stored outputs
        removed. What the instance keeps (asset bookkeeping: latest materializations, check
        executions) no step of the job reads."""
        from dagster import DagsterInstance

        from tecl_pipeline.defs.run_report import explain_result

        job = self._job(market_dir or self.market_dir)
        self._runs += 1  # the run's own rate-limit minute
        if self._instance is None:
            self._instance = DagsterInstance.ephemeral(tempdir=str(self.work_dir / "dagster"))
        instance = self._instance
        result = job.execute_in_process(
            partition_key=session.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config=self._run_config,
        )
        try:
            outcome = explain_result(result, session)
        finally:
            instance.delete_run(result.run_id)
            # The steps' outputs, pickled by the job's filesystem IO manager.
            shutil.rmtree(instance.storage_directory(), ignore_errors=True)
        return SessionRun(session, result.run_id, outcome.exit_code, outcome.reason)

    def journal(self) -> JournalStore:
        """The journal as a reader outside the pipeline sees it (one store, made once)."""
        if self._journal is None:
            from tecl_pipeline.adapters.journal_store import open_journal

            self._journal = open_journal(
                f"{self._state_uri.rstrip('/')}/journal",
                spool_dir=self.work_dir / "local" / "spool",
            )
        return self._journal

    def record(self, session: date) -> SessionRecord | None:
        return self.journal().latest(session)
