"""`tecl`: run the daily trading job for one session and print what happened.

Exit status of `tecl run`: 0 the session ended at its target; 2 refused, no order sent;
3 orders sent but the session did not end clean (report printed, alert sent); 1 an error;
64 a usage error.
"""

import argparse
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from tecl_pipeline.defs.run_report import (
    EXIT_ERROR,
    EXIT_NOT_CLEAN,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_STATUSES,
    EXIT_USAGE,
    RunOutcome,
)
from tecl_pipeline.observability.logs import LOGGER_NAME, records_dropped

T = TypeVar("T")
# How many recorded sessions `tecl status` shows unless told: two weeks of trading.
STATUS_SESSIONS = 10

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterInvalidConfigError, Definitions

    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.observability.alerts import Alerter
    from tecl_pipeline.observability.redaction import Redactor
    from tecl_pipeline.trading.stopping import StopRequest


def _parse_session(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _fraction(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value.is_finite() or not 0 <= value <= Decimal("0.2"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction from 0 to 0.2")
    return value


def _session_count(text: str) -> int:
    # ASCII digits only: str.isdigit() also passes "³", which int() then refuses, and
    # argparse would name this function instead of the option.
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of sessions >= 1")
    return int(text)


def _per_minute(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of requests >= 0")
    return int(text)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 64: argparse's own 2 would read as
    "refused to trade" to a scheduler."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: usage error: {message} (see {self.prog} --help)\n")


def _exit_status_help() -> str:
    import textwrap

    rows = [
        textwrap.fill(f"{code:<3} {meaning}", 78, initial_indent="  ", subsequent_indent="      ")
        + f"\n      scheduler: {then}"
        for code, meaning, then in EXIT_STATUSES
    ]
    return "exit status:\n" + "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tecl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run",
        help="run daily_trading_job for one session",
        description="Run daily_trading_job for one session and print the report.",
        epilog=_exit_status_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--verbose", action="store_true", help="also print Dagster's own event log")
    run.add_argument(
        "--session",
        type=_parse_session,
        help="trading session YYYY-MM-DD (default: the latest session of the market data)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="make the session's plan and print the orders it would send; send nothing, "
        "record no run, write no journal, raise no alert",
    )
    backfill = commands.add_parser(
        "backfill", help="compute and store the historical signals of a date range, in one run"
    )
    backfill.add_argument("--start", type=_parse_session, required=True, help="YYYY-MM-DD")
    backfill.add_argument("--end", type=_parse_session, required=True, help="YYYY-MM-DD")
    backfill.add_argument(
        "--verbose", action="store_true", help="also print Dagster's own event log"
    )
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
    sim.add_argument(
        "--account",
        choices=("margin", "cash", "pdt"),
        default="margin",
        help="the account kind: margin (as Alpaca's paper accounts: buying power twice the "
        "equity), cash, or pdt (a pattern day trader's: four times) (default margin)",
    )
    sim.add_argument(
        "--data-plan",
        choices=("basic", "unlimited"),
        default="basic",
        help="the market data subscription: basic (Alpaca's free plan: SIP data from the last "
        "15 minutes refused) or unlimited (default basic)",
    )
    sim.add_argument(
        "--fills",
        choices=("async", "instant"),
        default="async",
        help="how orders fill: async (as Alpaca: accepted with nothing filled, filled over the "
        "next reads, sometimes in parts; cancels pass through pending_cancel) or instant "
        "(filled in the POST) (default async)",
    )
    sim.add_argument(
        "--rate-limit",
        type=_per_minute,
        default=200,
        metavar="N",
        help="requests per minute and API key before 429, as Alpaca counts them (default 200, "
        "Alpaca's; 0 = no limit)",
    )
    sim.add_argument(
        "--market-buy-collar",
        type=_fraction,
        default=Decimal("0.04"),
        metavar="FRACTION",
        help="how far above the price a market buy is checked against buying power, as "
        "Alpaca checks it between 0.025 and 0.04 (default 0.04, the strict end)",
    )
    replay = commands.add_parser(
        "replay",
        help="replay real history session by session through the pipeline against the "
        "simulator and check it against signal_history and a reviewed baseline",
    )
    replay.add_argument("--start", type=_parse_session, help="first session (default 2021-11-29)")
    replay.add_argument("--end", type=_parse_session, help="last session (default 2026-07-31)")
    replay.add_argument(
        "--data-dir", type=Path, help="DIR/<SYMBOL>.csv of real closes (default TECL_DATA_DIR)"
    )
    replay.add_argument("--baseline", type=Path, help="JSON file of reviewed replay figures")
    replay.add_argument(
        "--write-baseline",
        action="store_true",
        help="store this replay's figures in --baseline instead of comparing with them",
    )
    commands.add_parser(
        "doctor",
        help="check, before a first run, that the settings reach a broker account and market "
        "data the pipeline can trade with; each check one line saying what to do",
    )
    status = commands.add_parser(
        "status",
        help="the last sessions of the journal (orders, equity, P&L, drawdown, residuals, "
        "alerts) and the positions as of the last record; reads only",
        description="The last recorded sessions of the journal a run of this environment "
        "writes (and records this machine spooled when their journal write failed), the "
        "calendar's sessions between them that have no record, and the positions as of the "
        "last record. Reads only: no probe, no spool replay, no quarantine, no alert.",
        epilog="exit status: 0 shown (or no record yet); 1 the settings, the journal, the "
        "spool or the alert file cannot be read, one line on stderr; 64 a usage error",
    )
    status.add_argument(
        "--sessions",
        type=_session_count,
        default=STATUS_SESSIONS,
        metavar="N",
        help=f"how many recorded sessions, the newest last (default {STATUS_SESSIONS})",
    )
    status.add_argument(
        "--json",
        action="store_true",
        help="one JSON document for scripts: money and quantities as exact decimal strings; "
        "return, drawdown and weight as decimal strings rounded to 4 places; dates ISO; "
        "unknown as null",
    )
    soak = commands.add_parser(
        "soak",
        help="chaos soak: consecutive sessions through the pipeline with seeded faults at "
        "every layer, invariants checked after each",
    )
    soak.add_argument("--sessions", type=int, required=True, help="number of sessions")
    soak.add_argument("--seed", type=int, required=True, help="seed of every fault drawn")
    soak.add_argument(
        "--fault-rate",
        type=float,
        default=0.1,
        help="chance of each fault kind in each session (default 0.1)",
    )
    return parser


# Above every level: no log record on stderr (a failing log file still falls back there).
QUIET = logging.CRITICAL + 1
# The local instance (`tecl run`, `make dev`): no telemetry from an offline trading machine,
# no "Join the Dagster community" dialog over the UI; the project's loggers feed each run's
# event log too, so a run's page in the UI shows their lines beside the steps' own.
# Redaction comes first on those loggers (observability/logs.py), so the event log gets
# masked text.
DAGSTER_YAML = f"""\
telemetry:
  enabled: false
nux:
  enabled: false
python_logs:
  managed_python_loggers:
    - {LOGGER_NAME}
"""


def _dagster_home() -> Path:
    """DAGSTER_HOME (default ./.dagster; for the built-in demo market its `demo` folder),
    checked: Dagster wants an absolute directory it can write, and says so only as a
    traceback.

    Read and set in the environment here, not in `Settings`: Dagster itself reads the
    variable, in this process and in every process it starts (the one read of the
    environment outside config/)."""
    from tecl_pipeline.config.settings import DEMO_DIR, ConfigError, demo_market

    raw = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / ".dagster")
    home = Path(raw)
    if not home.is_absolute():
        raise ConfigError(f"DAGSTER_HOME: {raw!r} is not an absolute path")
    if home.exists() and not home.is_dir():
        raise ConfigError(f"DAGSTER_HOME: {home} is a file, not a directory")
    # The demo's runs and materializations never mix with those on CSV or real data.
    if demo_market(os.environ) and home.name != DEMO_DIR:
        home = home / DEMO_DIR
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"DAGSTER_HOME: cannot create {home}: {exc.strerror or exc}") from None
    if not os.access(home, os.W_OK | os.X_OK):
        raise ConfigError(f"DAGSTER_HOME: {home} is not writable")
    return home


@contextmanager
def open_instance(home: Path) -> Iterator["DagsterInstance"]:
    """The DAGSTER_HOME instance; a dagster.yaml Dagster cannot read is a configuration
    error naming the file, not a traceback."""
    import yaml
    from dagster import DagsterError, DagsterInstance
    from dagster_shared.check import CheckError

    from tecl_pipeline.config.settings import ConfigError

    config = home / "dagster.yaml"
    try:
        # dagster-postgres logs each connection retry to the root logger; the outcome is
        # what counts, and it is raised, in one line.
        with records_dropped():
            instance = DagsterInstance.get()
    # CheckError: Dagster's own checks of the file, e.g. YAML that is a list, or a storage
    # class whose package is not installed.
    except (DagsterError, CheckError, ImportError, OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"DAGSTER_HOME: {config}: {_one_line(exc)}") from None
    except Exception as exc:
        # The storage's database (dagster-postgres) not reachable, after its own retries.
        if not _is_database_error(exc):
            raise
        raise ConfigError(
            f"DAGSTER_HOME: {config}: the instance's database cannot be reached: {_one_line(exc)}"
        ) from None
    with instance:
        yield instance


def _one_line(exc: BaseException) -> str:
    """Dagster's and yaml's texts span lines; one line names the problem."""
    return " ".join(str(exc).split()).removeprefix("Failure condition: ")


def _is_database_error(exc: BaseException) -> bool:
    import sqlalchemy.exc

    return isinstance(exc, sqlalchemy.exc.SQLAlchemyError) or type(exc).__module__.startswith(
        "dagster_postgres"
    )


def ensure_dagster_home() -> Path:
    """A persistent DAGSTER_HOME (default ./.dagster), so runs show up in `make dev`.

    The first process to use it creates the instance's SQLite storage, under a lock: two
    `tecl run`s started together on a new home would otherwise race to create the same
    tables, and one would die of it instead of being refused by the session lock (C2).
    """
    from tecl_pipeline.config.settings import ConfigError
    from tecl_pipeline.state.locks import exclusive

    home = _dagster_home()
    config = home / "dagster.yaml"
    ready = home / ".storage-ready"
    if ready.exists():
        return home
    try:
        with exclusive(home / ".setup.lock"):
            if not config.exists():
                config.write_text(DAGSTER_YAML)
            if not ready.exists():
                with open_instance(home):
                    pass
                ready.touch()
    except OSError as exc:
        raise ConfigError(f"DAGSTER_HOME: cannot write in {home}: {exc.strerror or exc}") from None
    return home


def _config_problem(exc: "DagsterInvalidConfigError") -> str:
    """The run config's errors in one line: an unset EnvVar is named as the variable."""
    problems = []
    for error in exc.errors:
        text = error.message.split("\n\nStack Trace", 1)[0]
        unset = re.search(r'environment variable "(\w+)" which is not set', text)
        problems.append(f"{unset.group(1)} is not set" if unset else " ".join(text.split()))
    return "; ".join(dict.fromkeys(problems)) or " ".join(str(exc).split())


def _off_the_main_thread(work: Callable[[], T]) -> T:
    """Run `work` in a worker thread while the main thread waits.

    On the main thread Dagster installs its own SIGINT/SIGTERM handlers, which raise inside
    a step wherever it is, between an order's request and its answer included. Off it, the
    signals stay with `tecl run`'s handlers, which ask the execution to stop before its next
    order instead.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tecl-run") as pool:
        future = pool.submit(work)
        while True:
            try:
                # A bounded wait, so that signal handlers run promptly on this thread.
                return future.result(timeout=0.2)
            except FuturesTimeout:
                continue


def _silent_console() -> "Definitions":
    """A run console logger that prints nothing, for `tecl run` without --verbose: its stderr
    is the one line it prints. Dagster's own console logger would print the project's lines
    too (python_logs in dagster.yaml hands them to the run's loggers), at any threshold for
    a critical alert; the run's event log keeps them all."""
    from dagster import Definitions, InitLoggerContext, LoggerDefinition

    def silent(_context: InitLoggerContext) -> logging.Logger:
        # Made, not fetched with getLogger: no other code sees or configures it.
        nothing = logging.Logger("tecl run")
        nothing.addHandler(logging.NullHandler())
        return nothing

    console = LoggerDefinition(silent, description="prints nothing: `tecl run` prints its report")
    return Definitions(loggers={"console": console})


def run_session(
    session: date | None,
    home: Path,
    *,
    verbose: bool = False,
    stop: "StopRequest | None" = None,
) -> RunOutcome:
    # Imported here so that `tecl --help` answers at once and a bad setting is reported
    # as such, not as an import failure.
    from tecl_pipeline.config.settings import ConfigError, Settings
    from tecl_pipeline.core.errors import RefusedToTrade
    from tecl_pipeline.observability.alerts import Alert
    from tecl_pipeline.observability.logs import Redactor, configure_logging

    settings = Settings.read()
    redactor = Redactor.for_settings(settings)
    # Without --verbose, stderr is the one line `tecl run` prints; the JSON log (this
    # process's alerts included) is in TECL_LOG_DIR.
    stderr_level = logging.WARNING if verbose else QUIET
    configure_logging(settings.logs_dir, redactor=redactor, stderr_level=stderr_level)
    # The alert sinks are settings too (TECL_ALERT_WEBHOOK_URL): checked before anything runs.
    alerter = _alerter(settings, redactor, settings.logs_dir)
    # Dagster and the definitions only now (seconds of imports): a bad setting is reported
    # in a fraction of a second.
    from dagster import DagsterInvalidConfigError, Definitions

    from tecl_pipeline.definitions import build_definitions
    from tecl_pipeline.defs.partitions import CALENDAR, session_partitions
    from tecl_pipeline.defs.run_report import explain_result

    try:
        session = session or _default_session(settings)
        CALENDAR.require_session(session)
        if not session_partitions.has_partition_key(session.isoformat()):
            raise RefusedToTrade(_not_a_partition(session))
    except RefusedToTrade as exc:
        # Refused before any run exists: the alert is sent from here (in a run, the run's).
        alerter.send(
            Alert("refused", "tecl run refused to trade", str(exc), session=session or None)
        )
        return RunOutcome(EXIT_REFUSED, "", str(exc))
    quiet = {"observability": {"stderr_level": stderr_level}}
    defs = build_definitions(settings, resource_config=quiet)
    if not verbose:
        defs = Definitions.merge(defs, _silent_console())
    job = defs.resolve_job_def("daily_trading_job")
    with open_instance(home) as instance:
        why = stop() if stop is not None else None
        if why is not None:
            # No run exists yet, so no run will alert: this process does.
            reason = f"stopped by {why} before the run started: nothing sent"
            alerter.send(Alert("stopped", "tecl run stopped", reason, session=session))
            return RunOutcome(EXIT_ERROR, "", reason)
        try:
            result = _off_the_main_thread(
                lambda: job.execute_in_process(
                    partition_key=session.isoformat(),
                    instance=instance,
                    raise_on_error=False,
                    # The report below says what happened; the full event log is in the UI.
                    # A logger runs only when the run config names it (else Dagster's own
                    # console logger runs, at DEBUG).
                    run_config={
                        "loggers": {
                            "console": {"config": {"log_level": "DEBUG"}} if verbose else {}
                        }
                    },
                    resources={"stop_request": stop} if stop is not None else None,
                )
            )
        except DagsterInvalidConfigError as exc:
            # E.g. an EnvVar whose variable is not set: named, before anything ran (C4);
            # raised as what it is, so it is alerted like every configuration error.
            raise ConfigError(_config_problem(exc)) from None
        outcome = explain_result(result, session)
        _alert_outcome(instance, alerter, outcome, session)
    return outcome


def _alert_outcome(
    instance: "DagsterInstance",
    alerter: "Alerter",
    outcome: RunOutcome,
    session: date,
) -> None:
    """A run that traded but did not end clean reaches the alert sinks with what a person
    must look at, unless the run alerted already (a refusal, a stop or a step that failed
    alert where they happen, in the run): one alert per run."""
    from tecl_pipeline.common.events import Severity
    from tecl_pipeline.defs.failure_alerts import alert_once
    from tecl_pipeline.observability.alerts import Alert

    if outcome.exit_code != EXIT_NOT_CLEAN or not outcome.run_id:
        return
    alert = Alert(
        kind="not_clean",
        title=f"session {session} did not end clean: look at the report",
        detail="\n".join(outcome.attention),
        session=session,
        run_id=outcome.run_id,
        severity=Severity.CRITICAL,
    )
    alert_once(instance, outcome.run_id, lambda _run: alerter.send(alert), route="cli")


def _not_a_partition(session: date) -> str:
    from tecl_pipeline.defs.partitions import partition_opens

    opens = partition_opens(session)
    if opens > datetime.now(opens.tzinfo):
        return (
            f"session {session} is not a trading partition yet: it becomes one at "
            f"{opens:%Y-%m-%d %H:%M %Z} (New York)"
        )
    return f"session {session} is outside the trading partitions"


def _default_session(settings: "Settings") -> date:
    """The latest session of replayed or demo data; in paper and live, today's session."""
    from tecl_pipeline.config.settings import Mode
    from tecl_pipeline.core.calendar import EXCHANGE_TZ
    from tecl_pipeline.core.errors import UnknownSessionError
    from tecl_pipeline.core.universe import SYMBOLS
    from tecl_pipeline.defs.deployments import market_data_resource
    from tecl_pipeline.defs.partitions import CALENDAR

    if settings.mode is Mode.DEMO or settings.data_dir is not None:
        return market_data_resource(settings).open(CALENDAR).latest_session(SYMBOLS)
    now = datetime.now(EXCHANGE_TZ)
    today = CALENDAR.session_for(now)
    if today is None:
        raise UnknownSessionError(f"{now:%Y-%m-%d} is not a trading session; pass --session")
    return today


def _backfill(start: date, end: date, home: Path, *, verbose: bool = False) -> int:
    """Historical signals into the history table: yearly partitions, one run (fast path)."""
    from tecl_pipeline.app.progress import working
    from tecl_pipeline.definitions import defs
    from tecl_pipeline.defs.history import history_partition_keys, run_backfill

    with open_instance(home) as instance:
        try:
            keys = history_partition_keys(start, end, instance)
        except ValueError as exc:  # a range the history cannot hold, said as such
            print(f"tecl backfill: {exc}", file=sys.stderr)
            return EXIT_ERROR
        span = f"{start} .. {end}: {len(keys)} yearly partition(s) {keys[0]}..{keys[-1]}"
        with working(f"backfill {span}, in one run"):
            summary = run_backfill(
                start,
                end,
                instance=instance,
                defs=defs,
                log_level="DEBUG" if verbose else "CRITICAL",
            )
    print(summary.describe())
    if summary.success:
        return EXIT_OK
    if summary.untrusted_data:
        # As `tecl run` refuses untrustworthy data (2): nothing was computed from it.
        print(f"tecl backfill: refused, nothing stored: {summary.problem}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"tecl backfill: error: {summary.problem}", file=sys.stderr)
    return EXIT_ERROR


def _simulator(args: argparse.Namespace) -> int:
    from tecl_pipeline.core.calendar import TradingCalendar
    from tecl_pipeline.core.errors import UnknownSessionError
    from tecl_pipeline.simulator.model import AccountKind, DataPlan, FillMode
    from tecl_pipeline.simulator.server import serve

    try:
        now = None if args.session is None else TradingCalendar().decision_time(args.session)
        serve(
            args.host,
            args.port,
            data_dir=args.data_dir,
            seed=None,
            now=now,
            data_plan=DataPlan(args.data_plan),
            account_kind=AccountKind(args.account),
            rate_limit=args.rate_limit or None,
            fills=FillMode.ASYNC if args.fills == "async" else FillMode.IMMEDIATE,
            market_buy_collar=args.market_buy_collar,
        )
    except (UnknownSessionError, ValueError) as exc:
        print(f"tecl simulator: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        # Binding the port: in use, not permitted, or no such address on this machine.
        why = exc.strerror or str(exc)
        print(f"tecl simulator: cannot listen on {args.host}:{args.port}: {why}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    import tempfile

    from tecl_pipeline.app.progress import progress
    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.defs.resources import TradingPolicyResource
    from tecl_pipeline.harness import replay as history
    from tecl_pipeline.harness.world import World

    data_dir = args.data_dir or Settings.read().data_dir
    if data_dir is None or not data_dir.is_dir():
        print(
            "tecl replay: --data-dir (or TECL_DATA_DIR) must name a folder of <SYMBOL>.csv",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if args.write_baseline and args.baseline is None:
        print("tecl replay: --write-baseline needs --baseline FILE", file=sys.stderr)
        return EXIT_ERROR
    sessions = history.replay_sessions(
        args.start or history.REPLAY_START, args.end or history.REPLAY_END
    )
    if not sessions:
        print("tecl replay: no trading session in that range", file=sys.stderr)
        return EXIT_ERROR

    reserve = TradingPolicyResource().policy().cash_reserve
    with (
        tempfile.TemporaryDirectory(prefix="tecl-replay-") as work,
        World(Path(work), data_dir.resolve(), first_session=sessions[0]) as world,
        progress("replay", len(sessions), "sessions") as shown,
    ):
        summary = history.replay(
            world,
            sessions,
            cash_reserve=reserve,
            progress=lambda session, number: shown.advance(number, str(session)),
        )
    print(summary.describe())
    for problem in summary.mismatches[:20]:
        print(f"  mismatch {problem}")
    failed = bool(summary.mismatches)
    if args.baseline is not None:
        key = history.baseline_key(summary)
        if args.write_baseline:
            history.write_baseline(args.baseline, summary)
            print(f"baseline {key} written to {args.baseline}")
        else:
            stored = history.read_baseline(args.baseline, key)
            if stored is None:
                print(f"baseline: {args.baseline} has no entry for {key}", file=sys.stderr)
                failed = True
            else:
                moved = history.baseline_differences(stored, summary.figures())
                for line in moved:
                    print(f"  baseline moved: {line}")
                print(f"baseline {key}: " + ("MOVED" if moved else "matches"))
                failed = failed or bool(moved)
    return EXIT_ERROR if failed else EXIT_OK


def _soak(args: argparse.Namespace) -> int:
    import tempfile

    from tecl_pipeline.app.progress import progress
    from tecl_pipeline.harness.soak import (
        DevInstallRequired,
        SoakResult,
        require_dev_install,
        run_soak,
    )

    try:
        require_dev_install()
    except DevInstallRequired as exc:
        # Not a usage error: the command is right, the install lacks its tools (status 1).
        print(str(exc), file=sys.stderr)
        return EXIT_ERROR
    print(f"soak: seed {args.seed} (rerun with --seed {args.seed})", flush=True)

    def note(result: SoakResult) -> str:
        return (
            f"{result.runs} runs, {len(result.violations)} violation(s), "
            f"rss {result.rss_mb[-1]:.0f} MB"
        )

    try:
        with (
            tempfile.TemporaryDirectory(prefix="tecl-soak-") as work,
            progress("soak", args.sessions, "sessions") as shown,
        ):
            result = run_soak(
                args.sessions,
                args.seed,
                args.fault_rate,
                Path(work),
                progress=lambda number, result: shown.advance(number, note(result)),
            )
    except ValueError as exc:
        print(f"tecl soak: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for violation in result.violations[:50]:
        print(f"  violation {violation}")
    print(result.line())
    clean = not (result.violations or result.duplicate_orders or result.journal_lost)
    return EXIT_OK if clean else EXIT_ERROR


@contextmanager
def _stop_on_signals() -> Iterator["StopRequest"]:
    """SIGTERM (a scheduler's or an operator's stop) or Ctrl-C: no new order after it; the
    run ends, says what it left working, alerts and exits 1. Installed before anything heavy
    is imported: a stop during start-up is reported and alerted like any other."""
    from tecl_pipeline.trading.stopping import StopRequest

    stop = StopRequest()
    previous = {
        signum: signal.signal(
            signum, lambda number, frame: stop.request(signal.Signals(number).name)
        )
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace, home: Path, stop: "StopRequest | None") -> int:
    outcome = run_session(args.session, home, verbose=args.verbose, stop=stop)
    if outcome.report:
        print(outcome.report, flush=True)
    if outcome.reason:
        label = {EXIT_REFUSED: "refused to trade", EXIT_NOT_CLEAN: "attention"}.get(
            outcome.exit_code, "error"
        )
        # One line, whatever the cause's own text spans (a retry summary, a quoted body).
        print(f"tecl: {label}: {' '.join(outcome.reason.split())}", file=sys.stderr)
    return outcome.exit_code


def _dry_run(args: argparse.Namespace) -> int:
    """The run's chain to the plan, read-only (`app.preview`): 0 when a run would trade or
    has nothing to do, 2 when it would refuse, saying why."""
    from tecl_pipeline.app.preview import deployment, preview, report
    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.core.errors import RefusedToTrade, describe
    from tecl_pipeline.trading.errors import BrokerError

    settings = Settings.read()
    # The deployment's observability resource sets up the logs, as in a run.
    stderr_level = logging.WARNING if args.verbose else QUIET
    with _dagster_config_errors(), deployment(settings, stderr_level=stderr_level) as ready:
        try:
            session = args.session or _default_session(settings)
            with ready.broker.connect(session) as broker:
                result = preview(ready.source, broker, ready.policy, session)
        except RefusedToTrade as exc:
            print(f"tecl: refused to trade (dry run): {describe(exc)}", file=sys.stderr)
            return EXIT_REFUSED
        except BrokerError as exc:
            # As a run's step fails on it before any order: an error, not a refusal.
            print(f"tecl: error (dry run): {describe(exc)}", file=sys.stderr)
            return EXIT_ERROR
    print(report(result), flush=True)
    if result.refused:
        why = " ".join("; ".join(result.problems).split())
        print(f"tecl: refused to trade (dry run): {why}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


@contextmanager
def _dagster_config_errors() -> Iterator[None]:
    """An EnvVar whose variable is not set (paper mode without keys) is a configuration
    error naming it, as in a run."""
    from dagster import DagsterInvalidConfigError

    from tecl_pipeline.config.settings import ConfigError

    try:
        yield
    except DagsterInvalidConfigError as exc:
        raise ConfigError(_config_problem(exc)) from None


def _doctor() -> int:
    """0 when a run would trade, 2 when it would refuse, 1 when a check could not be made."""
    from tecl_pipeline.app.doctor import Verdict, diagnose, exit_verdict
    from tecl_pipeline.config.settings import Settings

    with _dagster_config_errors():
        findings = diagnose(Settings.read(), stderr_level=QUIET)
    for finding in findings:
        print(finding.line, flush=True)
    verdict = exit_verdict(findings)
    if verdict is Verdict.OK:
        return EXIT_OK
    named = [f.check for f in findings if f.verdict is verdict]
    what = "a run would refuse on" if verdict is Verdict.REFUSE else "could not check"
    print(f"tecl doctor: {what} {len(named)} check(s): {', '.join(named)}", file=sys.stderr)
    return EXIT_REFUSED if verdict is Verdict.REFUSE else EXIT_ERROR


def _status(args: argparse.Namespace) -> int:
    """0 with the status (or the line that there is no record yet), 1 when the journal, the
    spool or the alert file cannot be read: an unreachable dependency, said in one line."""
    from tecl_pipeline.app.status import StatusError, as_json, read_status, text
    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.core.errors import describe

    def note(message: str) -> None:
        print(f"tecl status: {' '.join(message.split())}", file=sys.stderr)

    try:
        status = read_status(Settings.read(), args.sessions, on_note=note)
    except StatusError as exc:
        # Not a refusal (2): status trades nothing; it could not read what it shows.
        print(f"tecl status: {describe(exc)}", file=sys.stderr)
        return EXIT_ERROR
    print(as_json(status) if args.json else text(status, asked=args.sessions), flush=True)
    return EXIT_OK


def _command(args: argparse.Namespace, stop: "StopRequest | None" = None) -> int:
    if args.command == "doctor":
        return _doctor()
    if args.command == "status":
        # Before ensure_dagster_home: status reads the journal, never the Dagster instance.
        return _status(args)
    if args.command == "soak":
        return _soak(args)
    if args.command == "simulator":
        return _simulator(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "run" and args.dry_run:
        return _dry_run(args)
    home = ensure_dagster_home()
    if args.command == "backfill":
        return _backfill(args.start, args.end, home, verbose=args.verbose)
    return _run(args, home, stop)


def _internal_error(exc: Exception) -> str:
    """A bug, in one line for the person; the traceback, redacted, in a file for whoever
    fixes it."""
    import tempfile
    import traceback

    from tecl_pipeline.config.settings import Settings
    from tecl_pipeline.observability.redaction import Redactor

    redactor = Redactor.for_settings(Settings.read_alerting())
    try:
        folder = Settings.read().logs_dir
        folder.mkdir(parents=True, exist_ok=True)
    except Exception:  # the settings may be what is broken: the temp directory still works
        folder = Path(tempfile.gettempdir())
    path = folder / f"tecl-error-{os.getpid()}.txt"
    try:
        path.write_text(redactor.redact("".join(traceback.format_exception(exc))))
        where = f"details in {path}"
    except OSError:
        where = "no details written: the log directory is not writable either"
    message = " ".join(redactor.redact(str(exc)).split()) or type(exc).__name__
    return f"tecl: internal error (a bug, please report it): {message}; {where}"


def _alert_before_run(kind: str, title: str, detail: str) -> None:
    """`tecl run` ended before a Dagster run existed, so no run-failure hook or sensor
    will see it: the alert goes from here, through the sinks the environment still allows
    (a malformed webhook or apprise URL is left out, the other routes carry the alert)."""
    from tecl_pipeline.common.events import Severity
    from tecl_pipeline.config.settings import ConfigError, Settings
    from tecl_pipeline.observability.alerts import Alert
    from tecl_pipeline.observability.logs import configure_logging
    from tecl_pipeline.observability.redaction import Redactor

    settings = Settings.read_alerting()
    redactor = Redactor.for_settings(settings)
    try:
        log_dir: Path | None = Settings.read().logs_dir
    except ConfigError:
        log_dir = None  # TECL_ALERT_FILE still names a file; the log sink stays quiet
    configure_logging(log_dir, redactor=redactor, stderr_level=QUIET)
    # A malformed webhook or apprise URL may be what is wrong: the routes that remain (at
    # least the log and the alert file) still carry the alert.
    for webhook, apprise in ((True, True), (True, False), (False, True), (False, False)):
        try:
            alerter = _alerter(settings, redactor, log_dir, webhook=webhook, apprise=apprise)
        except ConfigError:
            continue
        alerter.send(Alert(kind, title, detail, severity=Severity.CRITICAL))
        return


def _alerter(
    settings: "Settings",
    redactor: "Redactor",
    log_dir: Path | None,
    *,
    webhook: bool = True,
    apprise: bool = True,
) -> "Alerter":
    """This process's alert path, as a run's would be: the log, the alert file (or
    <log_dir>/alerts.jsonl), and the webhook and the apprise URLs of the settings unless
    left out."""
    from tecl_pipeline.observability.alerts import build_alerter

    hook = settings.alert_webhook_url if webhook else None
    urls = settings.alert_apprise_url if apprise else None
    return build_alerter(
        redactor,
        log_dir=log_dir,
        alert_file=settings.alert_file,
        webhook_url=None if hook is None else hook.get_secret_value(),
        apprise_urls=None if urls is None else urls.get_secret_value(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command != "run" or args.dry_run:
        # A dry run sends nothing: Ctrl-C stops it where it is, as any read-only command.
        return _main(args, None)
    with _stop_on_signals() as stop:
        return _main(args, stop)


def _main(args: argparse.Namespace, stop: "StopRequest | None") -> int:
    from tecl_pipeline.config.settings import ConfigError

    try:
        return _command(args, stop)
    except ConfigError as exc:
        print(f"tecl: configuration error: {exc}", file=sys.stderr)
        if args.command == "run" and not args.dry_run:
            _alert_before_run("config_error", "tecl run: configuration error", str(exc))
    except Exception as exc:
        print(_internal_error(exc), file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
