"""`tecl`: run the daily trading job for one session and print what happened.

Exit status: 0 traded or had nothing to do; 2 refused to trade (reason on stderr); 1 error.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tecl_pipeline.run_report import EXIT_ERROR, EXIT_OK, EXIT_REFUSED, RunOutcome

if TYPE_CHECKING:
    from tecl_pipeline.settings import Settings


def _parse_session(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tecl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run daily_trading_job for one session")
    run.add_argument("--verbose", action="store_true", help="also print Dagster's own event log")
    run.add_argument(
        "--session",
        type=_parse_session,
        help="trading session YYYY-MM-DD (default: the latest session of the market data)",
    )
    backfill = commands.add_parser(
        "backfill", help="compute and store the historical signals of a date range, in one run"
    )
    backfill.add_argument("--start", type=_parse_session, required=True, help="YYYY-MM-DD")
    backfill.add_argument("--end", type=_parse_session, required=True, help="YYYY-MM-DD")
    sim = commands.add_parser(
        "simulator", help="serve the Alpaca-compatible broker simulator until stopped"
    )
    sim.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any free)")
    sim.add_argument(
        "--data-dir", type=Path, help="replay DIR/<SYMBOL>.csv instead of the demo data"
    )
    sim.add_argument(
        "--session",
        type=_parse_session,
        help="start the simulated clock at this session's decision time "
        "(default: the latest session of the data)",
    )
    return parser


# Local instance defaults: no telemetry from an offline trading machine.
DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def ensure_dagster_home() -> Path:
    """A persistent DAGSTER_HOME (default ./.dagster), so runs show up in `make dev`."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return home


def run_session(session: date | None, *, verbose: bool = False) -> RunOutcome:
    # Imported here so that `tecl --help` answers at once and a bad setting is reported
    # as such, not as an import failure.
    from dagster import DagsterInstance, DagsterInvalidConfigError

    from tecl_pipeline.definitions import build_definitions
    from tecl_pipeline.defs.partitions import CALENDAR, session_partitions
    from tecl_pipeline.errors import RefusedToTrade
    from tecl_pipeline.run_report import explain_result
    from tecl_pipeline.settings import Settings

    settings = Settings.from_env(os.environ, cwd=Path.cwd())
    try:
        session = session or _default_session(settings)
        CALENDAR.require_session(session)
    except RefusedToTrade as exc:
        return RunOutcome(EXIT_REFUSED, "", str(exc))
    if not session_partitions.has_partition_key(session.isoformat()):
        return RunOutcome(EXIT_REFUSED, "", f"session {session} is outside the trading partitions")
    job = build_definitions(settings).resolve_job_def("daily_trading_job")
    with DagsterInstance.get() as instance:
        try:
            result = job.execute_in_process(
                partition_key=session.isoformat(),
                instance=instance,
                raise_on_error=False,
                # The report below says what happened; the full event log is in the UI.
                run_config={
                    "loggers": {
                        "console": {"config": {"log_level": "DEBUG" if verbose else "CRITICAL"}}
                    }
                },
            )
        except DagsterInvalidConfigError as exc:
            # E.g. an EnvVar whose variable is not set: named, before anything ran (C4).
            return RunOutcome(EXIT_ERROR, "", f"configuration: {exc}")
    return explain_result(result, session)


def _default_session(settings: "Settings") -> date:
    """The latest session of replayed or demo data; in paper and live, today's session."""
    from tecl_pipeline.calendar import EXCHANGE_TZ
    from tecl_pipeline.definitions import resources_for
    from tecl_pipeline.defs.partitions import CALENDAR
    from tecl_pipeline.errors import UnknownSessionError
    from tecl_pipeline.settings import Mode
    from tecl_pipeline.universe import SYMBOLS

    if settings.mode is Mode.DEMO or settings.data_dir is not None:
        source = resources_for(settings, os.environ)["market_data_source"]
        return source.open(CALENDAR).latest_session(SYMBOLS)
    now = datetime.now(EXCHANGE_TZ)
    today = CALENDAR.session_for(now)
    if today is None:
        raise UnknownSessionError(f"{now:%Y-%m-%d} is not a trading session; pass --session")
    return today


def _backfill(start: date, end: date) -> int:
    """Historical signals into the history table: yearly partitions, one run (fast path)."""
    from dagster import DagsterInstance

    from tecl_pipeline.definitions import defs
    from tecl_pipeline.defs.history import run_backfill

    if start > end:
        print(f"tecl backfill: --start {start} is after --end {end}", file=sys.stderr)
        return EXIT_ERROR
    with DagsterInstance.get() as instance:
        summary = run_backfill(start, end, instance=instance, defs=defs)
    print(summary.describe())
    return EXIT_OK if summary.success else EXIT_ERROR


def _simulator(args: argparse.Namespace) -> int:
    from tecl_pipeline.broker.simulator.server import serve
    from tecl_pipeline.calendar import TradingCalendar
    from tecl_pipeline.errors import UnknownSessionError

    try:
        now = None if args.session is None else TradingCalendar().decision_time(args.session)
        serve(args.host, args.port, data_dir=args.data_dir, seed=None, now=now)
    except (UnknownSessionError, ValueError) as exc:
        print(f"tecl simulator: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "simulator":
        return _simulator(args)
    ensure_dagster_home()
    if args.command == "backfill":
        return _backfill(args.start, args.end)
    from tecl_pipeline.settings import ConfigError

    try:
        outcome = run_session(args.session, verbose=args.verbose)
    except ConfigError as exc:
        print(f"tecl: configuration error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if outcome.report:
        print(outcome.report)
    if outcome.reason:
        label = "refused to trade" if outcome.exit_code == EXIT_REFUSED else "error"
        print(f"tecl: {label}: {outcome.reason}", file=sys.stderr)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
