"""`tecl doctor` before a first paper run: each check one line, the ones that would stop a
run named with what to do, judged by the rules a run applies. Paper mode against the
simulator standing in for Alpaca, keys through the environment as a user sets them."""

import logging

import pytest

from tecl_pipeline.app.doctor import Finding, diagnose
from tecl_pipeline.config.settings import DataFeed, Mode, Settings
from tecl_pipeline.simulator import AccountKind
from tecl_pipeline_tests.app.cli_helpers import tecl
from tecl_pipeline_tests.simulator.simulator_fixtures import SIM_KEY, SIM_SECRET, sim_state

QUIET = logging.CRITICAL + 1


@pytest.fixture
def paper(simulator, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPACA_API_KEY", SIM_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SIM_SECRET)

    def settings(**changes) -> Settings:
        return Settings(
            mode=Mode.PAPER,
            state_uri=(tmp_path / "state").as_uri(),
            broker_url=simulator.url,
            data_url=simulator.url,
            **changes,
        )

    return settings


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_a_paper_account_on_the_free_plan_passes_every_check(paper, simulator):
    findings = diagnose(paper(), stderr_level=QUIET)

    assert [f.check for f in findings] == [
        "settings",
        "daily bars",
        "account",
        "broker clock",
        "assets",
        "latest trades (iex)",
    ]
    assert all(f.ok for f in findings), [f.line for f in findings]
    assert by_check(findings)["settings"].detail == (
        f"paper mode, broker {simulator.url}, data feed iex"
    )
    account = by_check(findings)["account"]
    assert "a margin account" in account.detail and "never margin" in account.detail
    assert by_check(findings)["broker clock"].detail.endswith("EST, market open")
    assert sim_state(simulator.url)["submissions"] == [], "the doctor orders nothing"


def test_sip_on_the_free_plan_fails_naming_the_setting_and_the_fix(paper):
    findings = by_check(diagnose(paper(data_feed=DataFeed.SIP), stderr_level=QUIET))

    for check in ("daily bars", "latest trades (sip)"):
        assert not findings[check].ok
        assert "TECL_DATA_FEED=iex" in findings[check].detail
    assert findings["account"].ok


def test_what_would_stop_a_run_is_named_on_the_account_line(paper, simulator):
    simulator.simulator.set_account(
        kind=AccountKind.CASH, cash="-250", currency="EUR", trading_blocked=True
    )
    simulator.simulator.set_asset("UVXY", tradable=False)

    findings = by_check(diagnose(paper(), stderr_level=QUIET))

    account = findings["account"]
    assert not account.ok and "a cash account" in account.detail
    assert "account currency is EUR, not USD" in account.detail
    assert "owes its broker" in account.detail
    assert "account PA0SIMULATOR is blocked from trading" in account.detail
    assert not findings["assets"].ok and "UVXY" in findings["assets"].detail


def test_refused_keys_fail_every_broker_check_in_one_line_each(paper, monkeypatch):
    monkeypatch.setenv("ALPACA_SECRET_KEY", "not-the-secret")

    findings = diagnose(paper(), stderr_level=QUIET)

    broken = [f for f in findings if not f.ok]
    assert {f.check for f in broken} >= {"account", "broker clock", "assets"}
    for finding in broken:
        assert "401" in finding.detail and "\n" not in finding.line
        assert "not-the-secret" not in finding.line


def test_paper_mode_without_keys_is_one_configuration_line_naming_both(tmp_path):
    done = tecl(["doctor"], tmp_path, TECL_MODE="paper")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "tecl: configuration error: ALPACA_API_KEY is not set; ALPACA_SECRET_KEY is not set"
    )


def test_tecl_doctor_prints_a_line_per_check_and_exits_1_when_one_fails(
    tmp_path, simulator_process
):
    good = tecl(
        ["doctor"],
        tmp_path,
        TECL_MODE="paper",
        TECL_BROKER_URL=simulator_process,
        TECL_DATA_URL=simulator_process,
        ALPACA_API_KEY="sim-key",
        ALPACA_SECRET_KEY="sim-secret",
    )
    assert good.returncode == 0, good.stderr
    assert [line.split()[0] for line in good.stdout.splitlines()] == ["ok"] * 6
    assert good.stderr == ""

    bad = tecl(
        ["doctor"],
        tmp_path,
        TECL_MODE="paper",
        TECL_BROKER_URL=simulator_process,
        TECL_DATA_URL=simulator_process,
        TECL_DATA_FEED="sip",
        ALPACA_API_KEY="sim-key",
        ALPACA_SECRET_KEY="sim-secret",
    )
    assert bad.returncode == 1
    assert "Traceback" not in bad.stdout + bad.stderr
    assert bad.stderr.strip() == ("tecl doctor: 2 check(s) failed: daily bars, latest trades (sip)")
