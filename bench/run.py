"""`make bench`: the pipeline's speed and memory against their targets.

Prints a table and writes bench/results.json. Every figure is a median over repeated runs
(the machines are shared and noisy); a ratio always compares timings taken side by side in
this same run. A benchmark whose run does not succeed stops the harness: timing a failure
would be meaningless. The exit status is 1 when a figure misses its target.

    .venv/bin/python bench/run.py [--only NAME ...] [--output PATH]
"""

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult, JobDefinition
from harness import Check, Result, ratio_notes, render_table, seconds, timed, write_results
from noop_job import job_shape, noop_definitions
from stack_bench import bench_stack

from tecl_pipeline.app.cli import DAGSTER_YAML
from tecl_pipeline.config.settings import Settings
from tecl_pipeline.core.indicators import INDICATORS, indicator_frames, latest_indicators
from tecl_pipeline.core.strategy import evaluate_tecl, signal_history
from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.history import history_db, run_backfill
from tecl_pipeline.defs.resources import StateResource
from tecl_pipeline.simulator.engine import BrokerSimulator
from tecl_pipeline.state.history_store import read_signals

REPO = Path(__file__).resolve().parents[1]
JOB = "daily_trading_job"
# Enough for a median on this machine; fewer where one run is expensive.
DAILY_RUNS = 5
BACKFILL_RUNS = 3
SIGNAL_ROUNDS = 3  # each: SIGNAL_PER_ROUND vectorised timings, then one day-by-day pass
SIGNAL_PER_ROUND = 5
SCALING_RUNS = 9  # cheap, and the 1x figure is small enough for noise to matter
SCALING_FACTORS = (1, 4, 16)
LOAD_RUNS = 5
MEMORY_RUNS = 3
# "Flat" per-session time: within this factor of the 1x figure (caches, allocator, noise).
FLAT_WITHIN = 1.5
# What loading the code location means for `dg dev` or a code server: the repository.
LOAD_SCRIPT = "import tecl_pipeline.definitions as d; d.defs.get_repository_def()"


class BenchmarkFailed(RuntimeError):
    """A measured run did not do what it should; its timing would mean nothing."""


def require(condition: object, message: str) -> None:
    if not condition:
        raise BenchmarkFailed(message)


# -- data and isolated state -----------------------------------------------------------------


def market_dir() -> Path:
    """The real adjusted closes beside the repo, as the tests find them."""
    override = os.environ.get("TECL_SHARED_DATA")
    path = Path(override) if override else REPO.parent / "shared" / "data" / "market"
    require(path.is_dir(), f"real market data not found at {path} (set TECL_SHARED_DATA)")
    return path


def load_closes(data: Path) -> pd.DataFrame:
    """The ten symbols' closes read plainly with pandas, NaN before each symbol's first bar."""
    frames = {
        s: pd.read_csv(data / f"{s}.csv", index_col="date", parse_dates=["date"]) for s in SYMBOLS
    }
    return pd.concat({s: f["adj_close"] for s, f in frames.items()}, axis=1).sort_index()


def settings_in(root: Path, data: Path) -> Settings:
    """Deployment settings with every piece of state (journal, demo account, logs) in `root`."""
    return Settings(
        state_uri=(root / "state").as_uri(),
        data_dir=data,
        local_dir=root / "local",
        log_dir=root / "logs",
    )


def dagster_home(root: Path) -> Path:
    """An empty default local instance (SQLite), configured as `tecl` configures its own."""
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


def subprocess_env(root: Path, **overrides: str) -> dict[str, str]:
    """This environment without any TECL_/ALPACA_/DAGSTER_ setting, its state under `root`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TECL_", "ALPACA_", "DAGSTER_"))
    }
    env["DAGSTER_HOME"] = str(dagster_home(root))
    env["TECL_STATE_URI"] = (root / "state").as_uri()
    env.update(overrides)
    return env


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tecl-bench-") as name:
        yield Path(name)


def quiet_run_config() -> dict[str, object]:
    """As `tecl run`: Dagster's console log off (the instance still records every event)."""
    return {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


# -- 1, 2: daily_run, its Dagster overhead, first_order_latency --------------------------------


@contextmanager
def order_acceptances() -> Iterator[list[float]]:
    """perf_counter stamps of each order the simulator accepted, taken in its request thread
    as the book returns the accepted order (before the HTTP answer is written).

    Wraps the simulator's class from the outside for the duration only: the product needs
    no hook for this.
    """
    stamps: list[float] = []
    original = BrokerSimulator.submit_order

    def stamped(self: BrokerSimulator, payload: object, *, fault: str | None = None) -> object:
        answer = original(self, payload, fault=fault)
        stamps.append(time.perf_counter())  # no ApiError: the order is on the book
        return answer

    BrokerSimulator.submit_order = stamped  # pyright: ignore[reportAttributeAccessIssue]
    try:
        yield stamps
    finally:
        BrokerSimulator.submit_order = original


@dataclass(frozen=True)
class Timed:
    """One in-process run: wall seconds, its start (perf_counter), this process's CPU
    seconds (on a shared machine, wall time minus CPU time is mostly waiting for a core)."""

    seconds: float
    began: float
    cpu_seconds: float
    result: ExecuteInProcessResult


def execute(job: JobDefinition, session: date, instance: DagsterInstance) -> Timed:
    cpu = time.process_time()
    began = time.perf_counter()
    result = job.execute_in_process(
        partition_key=session.isoformat(),
        instance=instance,
        raise_on_error=False,
        run_config=quiet_run_config(),
    )
    elapsed = time.perf_counter() - began
    require(result.success, f"{job.name} for {session} failed (run {result.run_id})")
    return Timed(elapsed, began, time.process_time() - cpu, result)


def event_log_span(instance: DagsterInstance, result: ExecuteInProcessResult) -> float:
    """Run start to the last asset check evaluation, by the instance's event timestamps."""
    records = instance.all_logs(result.run_id)

    def stamps(kind: DagsterEventType) -> list[float]:
        return [r.timestamp for r in records if r.dagster_event_type == kind]

    return max(stamps(DagsterEventType.ASSET_CHECK_EVALUATION)) - min(
        stamps(DagsterEventType.RUN_START)
    )


def post_trade_check_passed(result: ExecuteInProcessResult) -> bool:
    return any(
        e.check_name == "post_trade_reconciled" and e.passed
        for e in result.get_asset_check_evaluations()
    )


def bench_daily_run(data: Path) -> list[Result]:
    session = load_closes(data).index[-1].date()
    noop_job = noop_definitions().resolve_job_def(JOB)
    real: list[Timed] = []
    empty: list[Timed] = []
    first_order: list[float] = []
    spans: list[float] = []
    with scratch() as root, DagsterInstance.from_config(str(dagster_home(root))) as instance:
        # One deployment, as on a trading machine: the same settings (so the instance keeps
        # one job snapshot), its state wiped before each run so that every run trades.
        deployment = root / "deployment"
        job_def = build_definitions(settings_in(deployment, data)).resolve_job_def(JOB)
        require(
            job_shape(noop_job) == job_shape(job_def),
            "bench/noop_job.py no longer has daily_trading_job's shape: update it",
        )
        for _ in range(DAILY_RUNS):
            shutil.rmtree(deployment, ignore_errors=True)
            with order_acceptances() as accepted:
                run = execute(job_def, session, instance)
            run_id = run.result.run_id
            require(accepted, f"run {run_id} sent no order for {session}")
            require(post_trade_check_passed(run.result), f"run {run_id}: not reconciled")
            real.append(run)
            first_order.append(accepted[0] - run.began)
            spans.append(event_log_span(instance, run.result))
            # Side by side with the real run, on the same instance: Dagster alone.
            empty.append(execute(noop_job, session, instance))
    daily = statistics.median(r.seconds for r in real)
    overhead = statistics.median(r.seconds for r in empty)
    daily_cpu = statistics.median(r.cpu_seconds for r in real)
    overhead_cpu = statistics.median(r.cpu_seconds for r in empty)
    return [
        Result(
            "daily_run",
            tuple(r.seconds for r in real),
            f"daily_trading_job for {session} on the real data, embedded simulator over HTTP, "
            "in-process on a default local (SQLite) instance; execute_in_process call to return",
            checks=(Check("median", daily, 10.0, "s"),),
            note=f"CPU {seconds(daily_cpu)}; run start to last check (event log) "
            f"{seconds(statistics.median(spans))}",
            extra={
                "session": session.isoformat(),
                "cpu_median_s": daily_cpu,
                "event_log_span_median_s": statistics.median(spans),
                "event_log_span_meaning": "RUN_START to the last asset check evaluation "
                "(post_trade_reconciled), from the instance's event timestamps",
            },
        ),
        Result(
            "daily_run_dagster_overhead",
            tuple(r.seconds for r in empty),
            "the same job shape (assets, partitions, inputs, checks) with every body empty, "
            "run alternately with daily_run on the same instance",
            ratio=overhead / daily,
            note=f"CPU {seconds(overhead_cpu)} ({overhead_cpu / daily_cpu:.0%} of daily_run's)",
            extra={"cpu_median_s": overhead_cpu, "cpu_ratio": overhead_cpu / daily_cpu},
            ratio_meaning="median of the empty-bodied run / median of daily_run: the share of "
            "a daily run spent in Dagster itself",
        ),
        Result(
            "first_order_latency",
            tuple(first_order),
            "from the start of the daily_run call to the first order the simulator accepted",
            checks=(Check("median", statistics.median(first_order), 5.0, "s"),),
        ),
    ]


# -- 3: history_backfill ---------------------------------------------------------------------


def one_backfill(root: Path, data: Path, start: date, end: date) -> tuple[float, pd.DataFrame]:
    """`tecl backfill`'s fast path from an empty instance and an empty history table."""
    defs = build_definitions(settings_in(root, data))
    home = dagster_home(root)
    log = io.StringIO()
    began = time.perf_counter()
    with redirect_stderr(log), DagsterInstance.from_config(str(home)) as instance:
        summary = run_backfill(start, end, instance=instance, defs=defs)
    elapsed = time.perf_counter() - began
    require(summary.success, f"backfill failed: {summary.describe()}\n{log.getvalue()[-4000:]}")
    state = (defs.resources or {}).get("state")
    if not isinstance(state, StateResource):
        raise BenchmarkFailed("resource 'state' is not a StateResource")
    return elapsed, read_signals(history_db(state), start, end)


def bench_history_backfill(data: Path) -> list[Result]:
    plain = signal_history(load_closes(data))
    start, end = plain.index[0].date(), plain.index[-1].date()
    dagster_runs: list[float] = []
    plain_runs: list[float] = []
    for n in range(BACKFILL_RUNS):
        with scratch() as root:
            elapsed, stored = one_backfill(root, data, start, end)
        require(
            stored["leaf"].tolist() == plain["leaf"].tolist(),
            f"backfill run {n}: the table's signals differ from signal_history's",
        )
        dagster_runs.append(elapsed)
        plain_runs.append(timed(lambda: signal_history(load_closes(data))))
    backfill = statistics.median(dagster_runs)
    return [
        Result(
            "history_backfill",
            tuple(dagster_runs),
            f"every signal {start}..{end} ({len(plain)} sessions) into the history table via "
            "run_backfill (yearly partitions, one run), from an empty instance and table",
            checks=(Check("median", backfill, 60.0, "s"),),
            ratio=backfill / statistics.median(plain_runs),
            ratio_meaning="history_backfill / history_backfill_plain (medians, same run)",
            note=f"{len(plain)} sessions, {BACKFILL_RUNS} empty instances",
            extra={"sessions": len(plain)},
        ),
        Result(
            "history_backfill_plain",
            tuple(plain_runs),
            "the same signals outside Dagster: read the CSVs with pandas, signal_history",
        ),
    ]


# -- 4: signal_history against evaluate_tecl day by day ----------------------------------------


def day_by_day(closes: pd.DataFrame, days: pd.Index) -> list[str]:
    """What deciding each session separately costs, as the daily job decides one: that
    session's indicators from the closes up to it, then `evaluate_tecl`."""
    return [evaluate_tecl(latest_indicators(closes.loc[:day])).leaf for day in days]


def tree_only_day_by_day(closes: pd.DataFrame, days: pd.Index) -> list[str]:
    """`evaluate_tecl` per session on indicators computed once, vectorised (for reference:
    the tree alone, as the parity test calls it)."""
    frames = indicator_frames(closes.loc[:, list(SYMBOLS)])
    rows = closes.index.get_indexer(days)
    stacked = np.stack([frames[name].to_numpy()[rows] for name in INDICATORS], axis=-1)
    return [
        evaluate_tecl(
            {
                symbol: dict(zip(INDICATORS, map(float, stacked[i, j]), strict=True))
                for j, symbol in enumerate(SYMBOLS)
            }
        ).leaf
        for i in range(len(rows))
    ]


def bench_signal_history(data: Path) -> list[Result]:
    closes = load_closes(data)
    history = signal_history(closes)
    vectorised: list[float] = []
    one_by_one: list[float] = []
    tree_only: list[float] = []
    for _ in range(SIGNAL_ROUNDS):
        vectorised += [timed(lambda: signal_history(closes)) for _ in range(SIGNAL_PER_ROUND)]
        began = time.perf_counter()
        leaves = day_by_day(closes, history.index)
        one_by_one.append(time.perf_counter() - began)
        require(leaves == history["leaf"].tolist(), "day by day and signal_history disagree")
        tree_only.append(timed(lambda: tree_only_day_by_day(closes, history.index)))
    fast = statistics.median(vectorised)
    ratio = statistics.median(one_by_one) / fast
    span = f"{history.index[0].date()}..{history.index[-1].date()}"
    return [
        Result(
            "signal_history",
            tuple(vectorised),
            f"signal_history over the whole real history ({len(closes)} rows of closes, "
            f"{len(history)} signal sessions {span})",
            checks=(
                Check("median", fast, 0.050, "s"),
                Check("ratio", ratio, 100.0, "x", at_most=False),
            ),
            ratio=ratio,
            ratio_meaning="signal_history_day_by_day / signal_history (medians, same run)",
            note=f"{len(history)} sessions; evaluate_tecl alone on precomputed indicators: "
            f"{seconds(statistics.median(tree_only))}",
            extra={
                "tree_only_day_by_day_median_s": statistics.median(tree_only),
                "tree_only_ratio": statistics.median(tree_only) / fast,
                "tree_only_meaning": "evaluate_tecl per session on indicators computed once "
                "(vectorised), for reference; not the target's comparison",
            },
        ),
        Result(
            "signal_history_day_by_day",
            tuple(one_by_one),
            "the same sessions decided one at a time: indicators from the closes up to the "
            "session (latest_indicators), then evaluate_tecl",
        ),
    ]


# -- 7: scaling ----------------------------------------------------------------------------------


def extended_history(closes: pd.DataFrame, factor: int) -> pd.DataFrame:
    """`factor` times as many rows: the real closes, then the span where all ten symbols
    trade, replayed alternately backwards and forwards on business days after the last one.

    Mirroring keeps the series continuous at every joint and its prices within the real
    range (a plain repeat would compound UVXY's decay to zero in a few copies).
    """
    extra = (factor - 1) * len(closes)
    if extra == 0:
        return closes
    complete = closes.loc[closes.notna().all(axis=1)].to_numpy()
    copies = -(-extra // len(complete))
    mirrored = [complete[::-1] if n % 2 == 0 else complete for n in range(copies)]
    values = np.concatenate(mirrored)[:extra]
    index = pd.bdate_range(closes.index[-1] + pd.offsets.BDay(1), periods=extra)
    return pd.concat([closes, pd.DataFrame(values, index=index, columns=closes.columns)])


def bench_scaling(data: Path) -> list[Result]:
    closes = load_closes(data)
    inputs = {f: extended_history(closes, f) for f in SCALING_FACTORS}
    signals = {f: len(signal_history(frame)) for f, frame in inputs.items()}
    runs: dict[int, list[float]] = {f: [] for f in SCALING_FACTORS}
    for _ in range(SCALING_RUNS):
        for factor, frame in inputs.items():  # round-robin: the noise hits every size alike
            runs[factor].append(timed(lambda frame=frame: signal_history(frame)))
    per_session = {f: statistics.median(runs[f]) / len(inputs[f]) for f in SCALING_FACTORS}
    base = per_session[SCALING_FACTORS[0]]
    return [
        Result(
            f"signal_history_scaling_{factor}x",
            tuple(runs[factor]),
            f"signal_history on {factor}x the history ({len(inputs[factor])} rows, "
            f"{signals[factor]} signal sessions; synthetic beyond 1x)",
            checks=()
            if factor == SCALING_FACTORS[0]
            else (Check("ratio", per_session[factor] / base, FLAT_WITHIN, "x"),),
            ratio=per_session[factor] / base,
            ratio_meaning=f"time per session at {factor}x / at 1x (flat = linear total)",
            note=f"{seconds(per_session[factor])} per session ({len(inputs[factor])} rows)",
            extra={
                "rows": len(inputs[factor]),
                "signal_sessions": signals[factor],
                "per_session_s": per_session[factor],
                "per_session": seconds(per_session[factor]),
            },
        )
        for factor in SCALING_FACTORS
    ]


# -- 5: definitions_load -------------------------------------------------------------------------


def bench_definitions_load(data: Path) -> list[Result]:
    """Cold start (A1): a fresh interpreter importing the package and loading the repository."""
    samples: list[float] = []
    with scratch() as root:
        env = subprocess_env(root)
        for _ in range(LOAD_RUNS):
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", LOAD_SCRIPT],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            samples.append(time.perf_counter() - began)
            require(done.returncode == 0, f"loading the definitions failed:\n{done.stderr}")
    return [
        Result(
            "definitions_load",
            tuple(samples),
            f"fresh `python -c {LOAD_SCRIPT!r}` on the embedded defaults",
            checks=(Check("median", statistics.median(samples), 4.0, "s"),),
            note="fresh interpreter each run",
            extra={"network_io": "none: tecl_pipeline_tests/defs/test_definitions_load.py"},
        )
    ]


# -- 6: peak_memory --------------------------------------------------------------------------------


def wait_with_usage(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, int]:
    """(exit code, peak RSS in KiB) of this one child: wait4 reports its own rusage, where
    RUSAGE_CHILDREN would report the largest of every child so far."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise BenchmarkFailed(f"{process.args} still running after {timeout:.0f} s")
        time.sleep(0.005)


def bench_peak_memory(data: Path) -> list[Result]:
    session = load_closes(data).index[-1].date().isoformat()
    tecl = str(Path(sys.executable).parent / "tecl")
    walls: list[float] = []
    peaks_mb: list[float] = []
    with scratch() as root:
        for n in range(MEMORY_RUNS):
            # A fresh journal and demo account each time (it trades), one instance for all.
            env = subprocess_env(
                root,
                TECL_DATA_DIR=str(data),
                TECL_STATE_URI=(root / f"state-{n}").as_uri(),
                TECL_LOCAL_DIR=str(root / f"local-{n}"),
            )
            output = root / f"tecl-run-{n}.log"
            with output.open("wb") as sink:
                began = time.perf_counter()
                process = subprocess.Popen(
                    [tecl, "run", "--session", session],
                    cwd=root,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
                code, peak_kib = wait_with_usage(process, timeout=300)
                walls.append(time.perf_counter() - began)
            require(code == 0, f"tecl run exited {code}:\n{output.read_text()[-4000:]}")
            peaks_mb.append(peak_kib * 1024 / 1e6)
    return [
        Result(
            "peak_memory",
            tuple(walls),
            f"`tecl run --session {session}` on the real data in a fresh process: peak RSS "
            "(wait4 ru_maxrss); the times are the whole command's",
            checks=(Check("peak RSS", max(peaks_mb), 400.0, "MB"),),
            note=f"peak RSS {max(peaks_mb):.0f} MB (max of runs; min {min(peaks_mb):.0f} MB)",
            extra={
                "peak_rss_mb": peaks_mb,
                "median_mb": statistics.median(peaks_mb),
                "min_mb": min(peaks_mb),
                "max_mb": max(peaks_mb),
            },
        )
    ]


# -- 7: the same on the stack -----------------------------------------------------------------


def bench_on_the_stack(data: Path) -> list[Result]:
    plain = signal_history(load_closes(data))
    return bench_stack(
        data,
        session=load_closes(data).index[-1].date(),
        start=plain.index[0].date(),
        end=plain.index[-1].date(),
    )


# Each stack figure and the in-process one it is compared with, when both ran.
STACK_COUNTERPARTS = {
    "stack_submit_to_first_order": "first_order_latency",
    "stack_daily_run": "daily_run",
    "stack_history_backfill": "history_backfill",
}


def with_stack_ratios(results: list[Result]) -> list[Result]:
    medians = {r.name: r.median for r in results}
    return [
        replace(
            r,
            ratio=r.median / medians[STACK_COUNTERPARTS[r.name]],
            ratio_meaning=f"{r.name} / {STACK_COUNTERPARTS[r.name]} (in process, SQLite "
            "instance; medians, same run)",
        )
        if r.name in STACK_COUNTERPARTS and STACK_COUNTERPARTS[r.name] in medians
        else r
        for r in results
    ]


BENCHMARKS: tuple[tuple[str, Callable[[Path], list[Result]]], ...] = (
    ("daily_run", bench_daily_run),
    ("history_backfill", bench_history_backfill),
    ("signal_history", bench_signal_history),
    ("definitions_load", bench_definitions_load),
    ("peak_memory", bench_peak_memory),
    ("scaling", bench_scaling),
    ("stack", bench_on_the_stack),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    names = [name for name, _ in BENCHMARKS]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these")
    parser.add_argument("--output", type=Path, default=REPO / "bench" / "results.json")
    args = parser.parse_args(argv)
    data = market_dir()
    began = time.perf_counter()
    load_before = os.getloadavg()
    results: list[Result] = []
    for name, bench in BENCHMARKS:
        if args.only is None or name in args.only:
            print(f"running {name} ...", flush=True)
            results += bench(data)
    results = with_stack_ratios(results)
    wall = time.perf_counter() - began
    write_results(args.output, results, wall_seconds=wall, load_before=load_before)
    print()
    print(render_table(results))
    print(f"\nratios:\n{ratio_notes(results)}")
    print(
        f"\n{os.cpu_count()} CPUs, load average before {load_before[0]:.2f}; medians over the "
        f"runs shown; {wall:.0f} s in all; written to {args.output}"
    )
    missed = [r.name for r in results if r.meets_target is False]
    if missed:
        print(f"MISSED TARGET: {', '.join(missed)}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
