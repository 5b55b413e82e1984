"""The chaos soak: consecutive sessions through the real pipeline (the Dagster job, the
alpaca-py adapter, the simulator over HTTP, the journal in S3 and the keys in Secrets
Manager, both moto servers behind fault proxies) with faults drawn from one seed at every
layer, on an account whose kind (cash, margin or a pattern day trader's) is drawn from the
seed for each session, and the general promise checked after every session:

- no order is sent twice;
- no order on a closed market or on untrusted data;
- positions reach the target, or the shortfall is reported;
- every session's journal is complete and equals broker truth;
- a refused session says why;
- a second host's run of the same session (its own local state and Dagster instance, the
  same broker and journal), held at one point of its work while this host trades, fills
  no leg twice when it carries on (C2).

A session whose run fails is run again with the faults gone, as the next schedule tick or
the operator would; that is part of the promise ("retried on the next tick"), not a way
round it. The summary line depends only on the seed, the number of sessions and the rate.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import pandas as pd

from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.core.strategy import signal_history
from tecl_pipeline.core.universe import HOLDINGS, SYMBOLS
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.defs.resources import TradingPolicyResource
from tecl_pipeline.harness.replay import holding_problems, session_prices
from tecl_pipeline.harness.world import SessionRun, World, write_market_dir
from tecl_pipeline.marketdata.demo import DEMO_SEED, DemoMarketData
from tecl_pipeline.simulator import AccountKind, BrokerSimulator
from tecl_pipeline.simulator.faults import FaultKind, FaultRule
from tecl_pipeline.state.journal.records import SessionRecord
from tecl_pipeline.trading.execution import session_prefix
from tecl_pipeline.trading.models import Order, OrderStatus

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

    from tecl_pipeline.harness.s3_faults import FaultKind as S3FaultKind

# Demo data start in January 2019; the strategy's 200-session warm-up is over by then.
SOAK_START = date(2020, 1, 2)
REGION = "us-east-1"
# A failed session is run again at most this often (the next ticks, then the operator).
MAX_RERUNS = 3

FAULT_KINDS = (
    "broker_error",  # 429 / 5xx / HTML 502 / timeout / 200-with-error / malformed / 401
    "dropped_ack",  # an order accepted by the broker whose answer never arrives
    "partial_fill",  # orders fill in steps, late, or never within the fill timeout
    "s3_error",  # throttling, a lost answer after a write, access denied on the journal
    "secret_error",  # Secrets Manager throttled, denied, or down
    "duplicate_trigger",  # the session's job triggered twice
    "killed_run",  # a `tecl run` process killed just after its first order was accepted
    "closed_market",  # the run fires after the close
    "untrusted_data",  # the session's bar of one symbol is missing
    "second_host",  # another host's run of the session, held mid-way while this one trades
)
_BROKER_FAULTS = (
    FaultKind.RATE_LIMIT,
    FaultKind.SERVER_ERROR,
    FaultKind.MAINTENANCE,
    FaultKind.BAD_GATEWAY_HTML,
    FaultKind.TIMEOUT,
    FaultKind.ERROR_BODY,
    FaultKind.MALFORMED,
    FaultKind.UNAUTHORIZED,
)
_BROKER_ENDPOINTS = (
    "GET /v2/account",
    "GET /v2/positions",
    "GET /v2/clock",
    "GET /v2/assets/{symbol}",
    "GET /v2/orders",
    "GET /v2/orders/{id}",
    "POST /v2/orders",
)
# Pipeline settings that keep a soak session short: fills polled often, a short fill
# timeout, quick backoff; the simulator's faults ask for no Retry-After wait.
SOAK_POLICY: Mapping[str, Any] = MappingProxyType(
    {"fill_timeout_seconds": 1.0, "poll_interval_seconds": 0.02}
)
SOAK_BROKER = MappingProxyType({"retry_base_delay_seconds": 0.01, "timeout_seconds": 1.0})
# How long a second host's `tecl run` may take to reach its hold, or to finish after it.
SECOND_HOST_PATIENCE = 300.0
# The soak's AWS is moto in server mode, a development dependency: a runtime install runs
# the product, not the soak.
DEV_INSTALL = (
    "tecl soak needs the development install (moto[server]): make install, "
    "or pip install --require-hashes --no-deps -r requirements/dev.lock"
)


class DevInstallRequired(RuntimeError):
    """The soak started on a runtime install; the message says what to install."""


def require_dev_install() -> None:
    """Fails before any work when moto's server cannot be imported."""
    _moto_server()


def _moto_server() -> type[ThreadedMotoServer]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise DevInstallRequired(DEV_INSTALL) from exc
    return ThreadedMotoServer


@dataclass
class SoakResult:
    seed: int
    sessions: int
    fault_rate: float
    faults: Counter[str] = field(default_factory=Counter)
    # Sessions played on each kind of account (cash, margin, pdt): drawn per session.
    accounts: Counter[str] = field(default_factory=Counter)
    runs: int = 0
    orders: int = 0
    duplicate_orders: int = 0
    off_target: int = 0
    journal_lost: int = 0
    violations: list[str] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    """Resident memory after each session (C8); not part of the summary line."""
    open_files: list[int] = field(default_factory=list)

    def line(self) -> str:
        faults = ",".join(f"{kind}={self.faults[kind]}" for kind in FAULT_KINDS)
        accounts = ",".join(f"{kind}={self.accounts[kind]}" for kind in AccountKind)
        return (
            f"soak seed={self.seed} sessions={self.sessions} fault_rate={self.fault_rate} "
            f"faults[{faults}] accounts[{accounts}] runs={self.runs} orders={self.orders} "
            f"duplicate_orders={self.duplicate_orders} off_target={self.off_target} "
            f"journal_records_lost={self.journal_lost} "
            f"invariant_violations={len(self.violations)}"
        )


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _open_files() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


@contextmanager
def _patched_environ(values: Mapping[str, str], drop: tuple[str, ...]) -> Iterator[None]:
    """The AWS and secret settings the pipeline reads from the environment, for the soak
    only, restored afterwards (the soak may run inside a test process)."""
    saved = {k: os.environ.get(k) for k in (*values, *drop)}
    for key in drop:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _Aws:
    """moto in server mode with the journal bucket and the broker keys' secret, reached
    through fault proxies (S3 and Secrets Manager)."""

    def __init__(self, work_dir: Path, api_key: str, api_secret: str) -> None:
        server = _moto_server()
        from tecl_pipeline.harness.aws_faults import AwsFaultProxy
        from tecl_pipeline.harness.s3_faults import FaultProxy

        # moto's web server logs every request; a thousand sessions of that drowns the summary.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._moto = server(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        upstream = f"http://{host}:{port}"
        self.s3 = FaultProxy(upstream).start()
        self.secrets = AwsFaultProxy(upstream).start()
        self.environ = {
            "AWS_ACCESS_KEY_ID": "soak",
            "AWS_SECRET_ACCESS_KEY": "soak",
            "AWS_SESSION_TOKEN": "soak",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_S3": self.s3.url,
            "AWS_CONFIG_FILE": str(work_dir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(work_dir / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "TECL_SECRETS_ENDPOINT_URL": self.secrets.url,
        }
        from tecl_pipeline.adapters.aws.session import aws_session

        session = aws_session(
            aws_access_key_id="soak", aws_secret_access_key="soak", region_name=REGION
        )
        # moto keeps every server's data in this process: names of their own per soak.
        unique = uuid.uuid4().hex[:12]
        self.bucket = f"tecl-soak-{unique}"
        self.secret_id = f"tecl/soak/{unique}"
        session.client("s3", endpoint_url=upstream).create_bucket(Bucket=self.bucket)
        session.client("secretsmanager", endpoint_url=upstream).create_secret(
            Name=self.secret_id,
            SecretString=json.dumps({"ALPACA_API_KEY": api_key, "ALPACA_SECRET_KEY": api_secret}),
        )

    def clear(self) -> None:
        self.s3.clear()
        self.s3.forget()
        self.secrets.clear()

    def close(self) -> None:
        self.s3.stop()
        self.secrets.stop()
        self._moto.stop()


def soak_sessions(count: int, start: date = SOAK_START) -> list[date]:
    sessions = CALENDAR.sessions(start, start + timedelta(days=2 * count + 10))
    return sessions[:count]


def _demo_closes(through: date) -> pd.DataFrame:
    source = DemoMarketData(
        CALENDAR, now=lambda: CALENDAR.close_time(through) + timedelta(hours=1), seed=DEMO_SEED
    )
    return source.closes(SYMBOLS, through)


class _Session:
    """One soak session: its faults, its runs, and the invariants checked after them."""

    def __init__(self, soak: _Soak, session: date, faults: list[str], rng: random.Random) -> None:
        self.soak = soak
        self.world = soak.world
        self.session = session
        self.faults = faults
        self.rng = rng
        self.runs: list[SessionRun] = []
        self.violations: list[str] = []

    # -- fault set-up ----------------------------------------------------------------------

    def _arm_in_run_faults(self) -> None:
        simulator = self.world.simulator
        rules: list[FaultRule] = []
        if "broker_error" in self.faults:
            kind = self.rng.choice(_BROKER_FAULTS)
            rules.append(
                FaultRule(
                    kind=kind,
                    endpoint=self.rng.choice(_BROKER_ENDPOINTS),
                    times=self.rng.randint(1, 2),
                    after=self.rng.randint(0, 2),
                    retry_after=0,
                    delay=1.5,  # a timeout outlasts the client's 1 s
                )
            )
        if "dropped_ack" in self.faults:
            rules.append(
                FaultRule(kind=FaultKind.DROP_RESPONSE, endpoint="POST /v2/orders", times=1)
            )
        simulator.set_faults(self.rng.randrange(2**31), rules)
        if "partial_fill" in self.faults:
            simulator.set_fill_mode(
                self.rng.choice(("partial", "delayed", "never")), steps=3, delay_polls=2
            )
        aws = self.soak.aws
        if "s3_error" in self.faults:
            s3_faults: tuple[tuple[str, S3FaultKind, int | None], ...] = (
                ("PutObject", "slow_down", 1),
                ("PutObject", "drop_after_forward", 1),
                ("ListObjectsV2", "slow_down", 1),
                ("GetObject", "slow_down", 1),
                ("GetBucketLocation", "access_denied", None),
                ("PutObject", "access_denied", None),
            )
            operation, kind, times = self.rng.choice(s3_faults)
            aws.s3.inject(operation, kind, times=times)
        if "secret_error" in self.faults:
            code, status, times = self.rng.choice(
                (
                    ("ThrottlingException", 400, 1),
                    ("AccessDeniedException", 400, None),
                    ("InternalServiceError", 500, None),
                    ("ResourceNotFoundException", 400, None),
                )
            )
            aws.secrets.fail("GetSecretValue", code, status=status, times=times)

    def _disarm(self) -> None:
        self.world.simulator.clear_faults()
        self.world.simulator.set_fill_mode(self.world.fills)
        self.soak.aws.clear()
        self.world.set_clock(self.session)

    # -- runs --------------------------------------------------------------------------------

    def _orders(self) -> list[Order]:
        return session_orders(self.world.simulator, self.session)

    def _run(self, market_dir: Path | None = None) -> SessionRun:
        run = self.world.run(self.session, market_dir=market_dir)
        self.runs.append(run)
        if not run.ok and not run.reason.strip():
            self.violations.append(
                f"run {run.run_id} ended with exit {run.exit_code} and no reason"
            )
        return run

    def _refusing_run(self, kind: str, market_dir: Path | None = None) -> None:
        """A run that must refuse: nothing sent, and it says why."""
        before = len(self._orders())
        run = self._run(market_dir)
        sent = len(self._orders()) - before
        if run.ok or sent:
            self.violations.append(
                f"{kind}: the run {'traded' if run.ok else 'failed'} and sent {sent} order(s)"
            )

    def _killed_run(self) -> None:
        """`tecl run` in its own process, killed as soon as its first order is accepted
        (the order's answer held back, so the process dies not knowing)."""
        self.world.simulator.set_faults(
            0, [FaultRule(kind=FaultKind.LATENCY, endpoint="POST /v2/orders", times=1, delay=5.0)]
        )
        before = len(self._orders())
        env = {
            **os.environ,
            **self.world.environment(),
            "DAGSTER_HOME": str(self.soak.dagster_home),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tecl_pipeline.app.cli",
                "run",
                "--session",
                self.session.isoformat(),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while process.poll() is None and len(self._orders()) == before:
            time.sleep(0.05)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        self.soak.result.runs += 1
        self.world.simulator.clear_faults()

    def _held_second_host(self) -> subprocess.Popen[bytes]:
        """Another host's `tecl run` for the session (its own TECL_LOCAL_DIR and DAGSTER_HOME,
        the same simulator and journal), stopped (SIGSTOP) inside one broker request: an
        asset lookup of its execution's plan (positions already read), its first order's
        POST, or its first wait for a fill. `_let_go` resumes it after this host's runs.

        Nothing else talks to the broker while it is being stopped, and this host starts
        only once the held request has done at the broker what it does, so the session plays
        out the same way every time."""
        simulator = self.world.simulator
        point = self.rng.choice(("asset lookup", "order POST", "fill wait"))
        held = {s for s, p in simulator.state()["positions"].items() if Decimal(p["qty"])}
        # target_allocation looks each symbol up once before execution's own plan does.
        endpoint, after = {
            "asset lookup": (
                "GET /v2/assets/{symbol}",
                len(held | self.soak.targets(self.session)),
            ),
            "order POST": ("POST /v2/orders", 0),
            "fill wait": ("GET /v2/orders/{id}", 0),
        }[point]
        simulator.set_faults(
            0, [FaultRule(kind=FaultKind.LATENCY, endpoint=endpoint, after=after, times=1)]
        )
        if point == "fill wait":
            simulator.set_fill_mode("delayed", delay_polls=0)  # its first read fills it
        submitted = len(simulator.state()["submissions"])
        host = self.soak.work_dir / "second-host"
        env = {
            **os.environ,
            **self.world.environment(),
            "TECL_LOCAL_DIR": str(host / "local"),
            "TECL_LOG_DIR": str(host / "logs"),
            "DAGSTER_HOME": str(host / "dagster"),
        }
        host.mkdir(parents=True, exist_ok=True)
        # Files, not pipes: nobody reads a pipe while the process runs up to its hold.
        with open(host / "stdout.txt", "w") as stdout, open(host / "stderr.txt", "w") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tecl_pipeline.app.cli",
                    "run",
                    "--session",
                    str(self.session),
                ],
                env=env,
                cwd=self.soak.work_dir,
                stdout=stdout,
                stderr=stderr,
            )
        deadline = time.monotonic() + SECOND_HOST_PATIENCE

        def waiting(done: Callable[[], bool]) -> None:
            while process.poll() is None and not done():
                if time.monotonic() > deadline:
                    process.kill()
                    process.wait()
                    self.violations.append(f"the second host's run hung at its {point}")
                    return
                time.sleep(0.02)

        waiting(lambda: bool(simulator.state()["fault_plan"]["injected"]))
        if process.poll() is None:
            process.send_signal(signal.SIGSTOP)
            # The held request still lands at the broker: wait for what it does there (an
            # asset lookup changes nothing).
            if point == "order POST":
                waiting(lambda: len(simulator.state()["submissions"]) > submitted)
            elif point == "fill wait":
                waiting(lambda: all(o.status.is_final for o in self._orders()))
        simulator.clear_faults()
        simulator.set_fill_mode(self.world.fills)
        return process

    def _let_go(self, process: subprocess.Popen[bytes]) -> None:
        """The held second host carries on with what it had read before this host traded;
        it must fill nothing twice (`check`), and if it fails, say why."""
        process.send_signal(signal.SIGCONT)
        try:
            process.wait(timeout=SECOND_HOST_PATIENCE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self.violations.append("the second host's run hung after it was let go")
        self.soak.result.runs += 1
        reason = (self.soak.work_dir / "second-host" / "stderr.txt").read_text().strip()
        if process.returncode != 0 and not reason:
            self.violations.append(f"the second host's run ended with exit {process.returncode}")

    def play(self) -> None:
        world = self.world
        world.set_clock(self.session)
        if "untrusted_data" in self.faults:
            self._refusing_run("untrusted data", self.soak.stale_market(self.session, self.rng))
        if "closed_market" in self.faults:
            close = CALENDAR.close_time(self.session)
            world.simulator.set_clock(close + timedelta(minutes=self.rng.randint(1, 600)))
            self._refusing_run("closed market")
            world.set_clock(self.session)
        if "killed_run" in self.faults:
            self._killed_run()
        second_host = self._held_second_host() if "second_host" in self.faults else None
        self._arm_in_run_faults()
        run = self._run()
        reruns = 0
        while not run.ok and reruns < MAX_RERUNS:
            self._disarm()
            run = self._run()
            reruns += 1
        if "duplicate_trigger" in self.faults:
            before = len(self._orders())
            self._run()
            if run.ok and len(self._orders()) != before:
                self.violations.append("a second trigger of a finished session sent orders")
        self._disarm()
        if second_host is not None:
            self._let_go(second_host)
        self.check(run)

    # -- invariants ---------------------------------------------------------------------------

    def check(self, last: SessionRun) -> None:
        orders = self._orders()
        result = self.soak.result
        result.orders += len(orders)
        duplicates = repeated_orders(orders)
        result.duplicate_orders += len(duplicates)
        self.violations += [f"order sent twice: {d}" for d in duplicates]
        open_, close = CALENDAR.open_time(self.session), CALENDAR.close_time(self.session)
        for order in orders:
            if not open_ <= order.submitted_at.astimezone(EXCHANGE_TZ) < close:
                self.violations.append(
                    f"{order.client_order_id} submitted at {order.submitted_at}, market closed"
                )
        record = self.world.record(self.session)
        if journal_misses(record, orders):
            result.journal_lost += 1
            self.violations.append("the journal lacks orders the broker has")
        if not last.ok:
            # Off target, and said so: the last run's reason is the report.
            result.off_target += 1
            if not last.reason.strip():
                self.violations.append("the session ended refused without a reason")
            return
        if record is None:
            self.violations.append("traded, but no journal record")
            return
        state = self.world.simulator.state()
        self.violations += [
            f"journal vs broker: {p}" for p in record_vs_broker(record, orders, state)
        ]
        weights = {s: w for s, w in record.weights.items() if w}
        prices = session_prices(self.soak.closes, self.session)
        missed = holding_problems(record, weights, prices, self.soak.cash_reserve)
        if missed:
            result.off_target += 1
            self.violations.append(f"off target and no shortfall reported: {'; '.join(missed)}")


def session_orders(simulator: BrokerSimulator, session: date) -> list[Order]:
    """The session's orders as the simulator's book holds them (not through the API, so
    that checking never draws on the fault plan nor advances a fill)."""
    from tecl_pipeline.adapters.alpaca.schema import order_from_alpaca

    return [
        order_from_alpaca(body, "simulator book")
        for body in simulator.orders_with_prefix(session_prefix(session))
    ]


def repeated_orders(orders: list[Order]) -> list[str]:
    """A second order for the same side and symbol after one that filled completely."""
    found = []
    done: set[tuple[str, str]] = set()
    for order in sorted(orders, key=lambda o: o.submitted_at):
        leg = (order.side.value, order.symbol)
        if leg in done:
            found.append(order.client_order_id)
        if order.status is OrderStatus.FILLED:
            done.add(leg)
    return found


def journal_misses(record: SessionRecord | None, orders: list[Order]) -> bool:
    """Whether the broker has orders of the session that its journal record lacks."""
    recorded = set() if record is None else {o.client_order_id for o in record.orders}
    return any(o.client_order_id not in recorded for o in orders)


def record_vs_broker(
    record: SessionRecord, orders: list[Order], state: Mapping[str, Any]
) -> list[str]:
    problems = []
    truth = {o.client_order_id: (o.status, o.filled_qty) for o in orders}
    journal = {o.client_order_id: (o.status, o.filled_qty) for o in record.orders}
    if truth != journal:
        problems.append(f"orders {journal} but the broker has {truth}")
    held = {s: Decimal(p["qty"]) for s, p in state["positions"].items() if Decimal(p["qty"])}
    recorded = {s: q for s, q in record.positions.items() if q}
    if held != recorded:
        problems.append(f"positions {recorded} but the broker has {held}")
    if Decimal(state["cash"]) != record.cash:
        problems.append(f"cash {record.cash} but the broker has {state['cash']}")
    return problems


class _Soak:
    def __init__(self, work_dir: Path, sessions: list[date], result: SoakResult) -> None:
        self.work_dir = work_dir
        self.result = result
        self.closes = _demo_closes(sessions[-1])
        self.expected = signal_history(self.closes)
        self.cash_reserve = TradingPolicyResource(**SOAK_POLICY).policy().cash_reserve
        market = write_market_dir(self.closes, work_dir / "market")
        self.dagster_home = work_dir / "dagster"
        self.dagster_home.mkdir(parents=True)
        from tecl_pipeline.simulator.engine import DEMO_API_KEY, DEMO_API_SECRET

        self.aws = _Aws(work_dir, DEMO_API_KEY, DEMO_API_SECRET)
        self.world = World(
            work_dir,
            market,
            first_session=sessions[0],
            state_uri=f"s3://{self.aws.bucket}/soak",
            secret_id=self.aws.secret_id,
            environ=self.aws.environ,
            policy=SOAK_POLICY,
            broker=SOAK_BROKER,
        )

    def targets(self, session: date) -> set[str]:
        """The symbols `signal_history` puts money in at the session."""
        when = pd.Timestamp(session)
        return {s for s in HOLDINGS if self.expected.at[when, s]}

    def stale_market(self, session: date, rng: random.Random) -> Path:
        """A copy of the market data whose latest bar of one symbol is missing."""
        folder = self.work_dir / "stale-market"
        symbol = rng.choice(SYMBOLS)
        closes = self.closes.loc[: pd.Timestamp(session)].copy()
        closes.loc[pd.Timestamp(session), symbol] = float("nan")
        return write_market_dir(closes, folder)

    def audit_journal(self, days: list[date]) -> None:
        """At the end, every session's orders are still in its journal record: nothing
        written earlier was lost or overwritten by a later session (D1, D2, X5)."""
        for session in days:
            orders = session_orders(self.world.simulator, session)
            if journal_misses(self.world.record(session), orders):
                self.result.journal_lost += 1
                self.result.violations.append(f"{session}: journal record lost after the session")

    def close(self) -> None:
        self.world.close()
        self.aws.close()


def run_soak(
    sessions: int,
    seed: int,
    fault_rate: float,
    work_dir: Path,
    *,
    start: date = SOAK_START,
    progress: Callable[[int, SoakResult], None] | None = None,
) -> SoakResult:
    """`sessions` consecutive sessions from `start` (the first on or after it), with the
    faults of each session drawn from the seed and that session's date."""
    if sessions < 1:
        raise ValueError(f"--sessions must be at least 1, got {sessions}")
    if not 0 <= fault_rate <= 1:
        raise ValueError(f"--fault-rate must be within 0..1, got {fault_rate}")
    days = soak_sessions(sessions, start)
    result = SoakResult(seed=seed, sessions=sessions, fault_rate=fault_rate)
    soak = None
    aws_drop = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
    try:
        soak = _Soak(work_dir, days, result)
        with _patched_environ(soak.aws.environ, aws_drop):
            for number, session in enumerate(days, 1):
                rng = random.Random(f"{seed}/{session.isoformat()}")
                faults = [kind for kind in FAULT_KINDS if rng.random() < fault_rate]
                result.faults.update(faults)
                # Its own draw, so that the faults of a seed stay what they were.
                kind = random.Random(f"{seed}/{session.isoformat()}/account").choice(
                    tuple(AccountKind)
                )
                result.accounts[kind.value] += 1
                soak.world.simulator.set_account(kind=kind)
                played = _Session(soak, session, faults, rng)
                played.play()
                result.runs += len(played.runs)
                result.violations += [f"{session}: {v}" for v in played.violations]
                result.rss_mb.append(_rss_mb())
                result.open_files.append(_open_files())
                if progress is not None:
                    progress(number, result)
            soak.audit_journal(days)
    finally:
        if soak is not None:
            soak.close()
    return result
