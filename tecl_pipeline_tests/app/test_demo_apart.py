"""The demo kept apart (README "Demo, paper and live"): `make run` trades the built-in demo
market in an account, a journal and a Dagster instance of its own, labelled DEMO, so that a
replay of CSV files in the same checkout starts from an empty account and shows none of the
demo's runs."""

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance

from tecl_pipeline.defs.run_tags import DATA_SOURCE_TAG
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.trading.models import OrderSide
from tecl_pipeline_tests.app.cli_helpers import tecl, user_environ

REPO = Path(__file__).resolve().parents[2]
REPLAYED = date(2026, 7, 28)


def make_run(checkout: Path) -> subprocess.CompletedProcess[str]:
    """`make run` in `checkout`, a copy of this checkout's Makefile beside its virtualenv:
    the target's own recipe, in a folder of the test's. Its `install` prerequisite is taken
    as done (-o): the virtualenv is this checkout's, installed already."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # The environment this suite runs in, as the checkout's .venv.
    (checkout / ".venv").symlink_to(Path(sys.prefix))
    shutil.copy(REPO / "Makefile", checkout / "Makefile")
    # A make of its own: not the suite's (`make test`) flags, directory lines or jobserver.
    env = {k: v for k, v in user_environ().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--silent", "--no-print-directory", "-o", "install", "run"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_csv_replay_after_make_run_starts_from_an_empty_account(tmp_path, csv_dir):
    demo = make_run(tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.splitlines()[0].endswith("DEMO")

    replay = tecl(
        ["run", "--session", REPLAYED.isoformat()], tmp_path, TECL_DATA_DIR=str(csv_dir(REPLAYED))
    )
    assert replay.returncode == 0, replay.stderr
    assert "DEMO" not in replay.stdout

    # The replay's account was new: 100,000 in cash and nothing held, so it only bought,
    # and what it holds is exactly what it bought.
    [record] = LocalJournal(tmp_path / ".tecl" / "state" / "journal").records(REPLAYED)
    assert record.orders and all(order.side is OrderSide.BUY for order in record.orders)
    bought = {order.symbol: order.filled_qty for order in record.orders}
    assert {s: q for s, q in record.positions.items() if q} == bought
    assert abs(record.equity - 100_000) < 1

    # Each kept its own journal and its own Dagster instance.
    demo_session = date.fromisoformat(demo.stdout.split()[1])
    demo_journal = LocalJournal(tmp_path / ".tecl" / "demo" / "state" / "journal")
    real_journal = LocalJournal(tmp_path / ".tecl" / "state" / "journal")
    assert demo_journal.latest(demo_session) is not None
    assert real_journal.latest(demo_session) is None
    assert demo_journal.latest(REPLAYED) is None
    real = DagsterInstance.from_config(str(tmp_path / ".dagster")).get_runs()
    demo_runs = DagsterInstance.from_config(str(tmp_path / ".dagster" / "demo")).get_runs()
    assert [run.tags[DATA_SOURCE_TAG] for run in real] == ["csv"]
    assert [run.tags[DATA_SOURCE_TAG] for run in demo_runs] == ["demo"]
