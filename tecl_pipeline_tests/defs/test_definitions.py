"""The code location loads, validates and has the shapes the rest of the product relies on."""

import os
import re
import subprocess
import sys
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml
from dagster import partition_loading_context

from tecl_pipeline.core.calendar import EXCHANGE_TZ, TradingCalendar
from tecl_pipeline.defs.partitions import (
    CALENDAR,
    PARTITIONS_START,
    partition_opens,
    session_partitions,
)

REPO = Path(__file__).resolve().parents[2]
# A failure-mode ID of /work/shared/FAILURE_MODES.md (docs/failure-modes.md): T1, X10, ...
FAILURE_MODE_ID = re.compile(r"\b[A-Z]\d{1,2}\b")


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


def _last_partition(now: datetime) -> date:
    with partition_loading_context(effective_dt=now):
        key = session_partitions.get_last_partition_key()
    assert key is not None
    return date.fromisoformat(key)


def test_no_session_partition_lies_in_the_future():
    """Every hour of 2026 (DST changes, holidays, early closes, weekends): the last partition
    is never after today in New York. It is today's session from 06:00 New York on (05:00 in
    winter; the decision time is 12:45 at the earliest), else the last session before today.
    A future partition would show as missing on every trading asset's page."""
    now = datetime(2026, 1, 1, tzinfo=EXCHANGE_TZ)
    while now.year == 2026:
        today = now.date()
        last = _last_partition(now)
        before = CALENDAR.previous_session(today)
        assert last <= today, f"at {now}: partition {last} is in the future"
        if not CALENDAR.is_session(today) or now.hour < 5:
            assert last == before, f"at {now}: the last partition is {last}"
        elif now.hour >= 6:
            assert last == today, f"at {now}: today's session has no partition ({last})"
        else:
            assert last in {before, today}, f"at {now}: the last partition is {last}"
        now += timedelta(hours=1)


def test_a_session_is_a_partition_at_its_decision_time():
    """The schedule's run (and `tecl run`) for a session finds its partition."""
    for session in CALENDAR.sessions(date(2026, 1, 1), date(2026, 12, 31)):
        assert _last_partition(CALENDAR.decision_time(session)) == session


def test_a_session_becomes_a_partition_when_the_code_says_it_does():
    """`tecl run` names the time a session becomes a partition (for a run too early)."""
    for session in (date(2026, 1, 5), date(2026, 7, 6), date(2026, 3, 9), date(2026, 11, 2)):
        opens = partition_opens(session)
        assert opens.date() == session and opens.tzinfo == EXCHANGE_TZ
        assert _last_partition(opens - timedelta(minutes=1)) != session
        assert _last_partition(opens) == session


def _descriptions() -> dict[str, str]:
    """Every description the UI shows for the project's definitions, by what it describes."""
    from tecl_pipeline.definitions import defs

    repository = defs.get_repository_def()
    graph = repository.asset_graph
    found = {f"asset {node.key.to_user_string()}": node.description for node in graph.asset_nodes}
    for key in graph.asset_check_keys:
        check = f"check {key.asset_key.to_user_string()}:{key.name}"
        found[check] = graph.get_check_spec(key).description
    found |= {f"job {job.name}": job.description for job in repository.get_all_jobs()}
    found |= {f"schedule {s.name}": s.description for s in repository.schedule_defs}
    found |= {f"sensor {s.name}": s.description for s in repository.sensor_defs}
    for name, resource in repository.get_top_level_resources().items():
        found[f"resource {name}"] = resource.description
    return {what: text or "" for what, text in found.items()}


def test_no_description_in_the_ui_cites_a_failure_mode_id():
    """Descriptions are sentences for the person in the UI; the failure-mode IDs stay in
    comments, tests and docs. Covers assets, checks, jobs, schedules, sensors, resources."""
    descriptions = _descriptions()
    # The inventory is the real one: the daily chain's ends and every kind are in it.
    assert {"asset market_data", "check market_data:market_data_fresh"} <= descriptions.keys()
    assert {"job daily_trading_job", "schedule daily_trading_schedule"} <= descriptions.keys()
    assert {"sensor missed_session_sensor", "resource trading_policy"} <= descriptions.keys()
    citing = {
        what: FAILURE_MODE_ID.findall(text)
        for what, text in sorted(descriptions.items())
        if FAILURE_MODE_ID.search(text)
    }
    assert citing == {}


def test_the_id_pattern_finds_the_ids_and_not_the_indicators():
    assert FAILURE_MODE_ID.findall("stale data (T1, X10); see D4/X2 and R7.") == [
        "T1",
        "X10",
        "D4",
        "X2",
        "R7",
    ]
    assert FAILURE_MODE_ID.findall("Price, SMA(200), RSI(10), RSI9 and SMA200 at 15:45") == []


def test_workspace_yaml_names_the_code_location_dg_serves():
    """workspace.yaml (for `dagster-webserver -w`) and [tool.dg.project] name one location."""
    repo = Path(__file__).resolve().parents[2]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    [entry] = yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"] == {
        "module_name": project["code_location_target_module"],
        "location_name": project["code_location_name"],
    }
