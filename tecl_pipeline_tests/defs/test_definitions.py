"""The code location loads, validates and has the shapes the rest of the product relies on."""

import os
import subprocess
import sys
import tomllib
from datetime import date
from pathlib import Path

import yaml

from tecl_pipeline.core.calendar import TradingCalendar
from tecl_pipeline.defs.partitions import PARTITIONS_START, session_partitions

REPO = Path(__file__).resolve().parents[2]


def test_dg_check_defs_passes(tmp_path):
    """C1/A1: `dg check defs` (the project of pyproject.toml [tool.dg]) passes on the embedded
    defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECL_")}
    env["DAGSTER_HOME"] = str(tmp_path)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_defs_expose_the_daily_job_and_the_blocking_check():
    from tecl_pipeline.definitions import defs

    job = defs.resolve_job_def("daily_trading_job")
    assert job.partitions_def == session_partitions
    specs = list(defs.resolve_asset_graph().asset_check_keys)
    assert sorted(k.name for k in specs) == [
        "market_data_fresh",
        "market_data_sane",
        "post_trade_reconciled",
        "pre_trade_ready",
        "signal_parity",
    ]


def test_partition_keys_are_exactly_the_xnys_sessions():
    """T3: no partition on a weekend, a holiday or an ad-hoc closure; every session has one."""
    calendar = TradingCalendar()
    end = date(2026, 11, 20)
    expected = [d.isoformat() for d in calendar.sessions(PARTITIONS_START, end)]
    actual = [k for k in session_partitions.get_partition_keys() if k <= end.isoformat()]
    assert actual == expected
    for closed in ("2025-01-09", "2018-12-05", "2026-11-26", "2026-07-03", "2026-11-21"):
        assert not session_partitions.has_partition_key(closed)


def test_workspace_yaml_names_the_code_location_dg_serves():
    """workspace.yaml (for `dagster-webserver -w`) and [tool.dg.project] name one location."""
    repo = Path(__file__).resolve().parents[2]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    [entry] = yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"] == {
        "module_name": project["code_location_target_module"],
        "location_name": project["code_location_name"],
    }
