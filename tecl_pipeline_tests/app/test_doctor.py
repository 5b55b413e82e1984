"""`tecl doctor` before a first paper run: each check one line, the ones that would stop a
run named with what to do, judged by the rules a run applies. Paper mode against the
simulator standing in for Alpaca, keys through the environment as a user sets them."""

import logging
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tecl_pipeline.app.doctor import Finding, Verdict, diagnose, exit_verdict
from tecl_pipeline.config.settings import DataFeed
from tecl_pipeline.core.calendar import EXCHANGE_TZ
from tecl_pipeline.simulator import AccountKind, DataPlan
from tecl_pipeline.state.journal.local import LocalJournal
from tecl_pipeline.state.journal.records import SessionRecord
from tecl_pipeline_tests.app.cli_helpers import paper_at, tecl
from tecl_pipeline_tests.simulator.simulator_fixtures import sim_state

QUIET = logging.CRITICAL + 1
# Two sessions well before any day the tests run on (the doctor reads up to today).
EARLIER, LATER = date(2024, 3, 28), date(2024, 4, 1)


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def test_a_paper_account_on_the_free_plan_passes_every_check(paper, simulator):
    findings = diagnose(paper(), stderr_level=QUIET)

    assert [f.check for f in findings] == [
        "settings",
        "daily bars",
        "journal",
        "account",
        "broker clock",
        "assets",
        "latest trades (iex)",
        "plan",
    ]
    assert all(f.ok for f in findings), [f.line for f in findings]
    assert exit_verdict(findings) is Verdict.OK
    assert by_check(findings)["settings"].detail == (
        f"paper mode, broker {simulator.url}, data feed iex"
    )
    account = by_check(findings)["account"]
    assert "a margin account" in account.detail and "never margin" in account.detail
    assert by_check(findings)["broker clock"].detail == (
        "2026-11-24 15:45 EST, market open; next decision 2026-11-24 15:45 EST"
    )
    # A fresh account: the plan buys the target with limit orders, and sends none of them.
    plan = by_check(findings)["plan"].detail
    assert plan.startswith("session 2026-11-24, leaf ") and "buy " in plan and "limit" in plan
    assert sim_state(simulator.url)["submissions"] == [], "the doctor orders nothing"


def test_sip_on_the_free_plan_fails_naming_the_setting_and_the_fix(paper):
    findings = by_check(diagnose(paper(data_feed=DataFeed.SIP), stderr_level=QUIET))

    for check in ("daily bars", "latest trades (sip)"):
        assert findings[check].verdict is Verdict.REFUSE
        assert "TECL_DATA_FEED=iex" in findings[check].detail
    assert findings["account"].ok
    assert "plan" not in findings, "no bars, no plan"


def test_what_would_stop_a_run_is_named_on_the_account_line(paper, simulator):
    simulator.simulator.set_account(
        kind=AccountKind.CASH, cash="-250", currency="EUR", trading_blocked=True
    )
    simulator.simulator.set_asset("UVXY", tradable=False)

    findings = by_check(diagnose(paper(), stderr_level=QUIET))

    account = findings["account"]
    assert account.verdict is Verdict.REFUSE and "a cash account" in account.detail
    assert "account currency is EUR, not USD" in account.detail
    assert "owes its broker" in account.detail
    assert "account PA0SIMULATOR is blocked from trading" in account.detail
    assert findings["assets"].verdict is Verdict.REFUSE and "UVXY" in findings["assets"].detail
    # The plan is judged by the run's own pre-trade rules, which refuse the same account.
    plan = findings["plan"]
    assert plan.verdict is Verdict.REFUSE
    assert plan.detail == "account currency is EUR, not USD; not trading"


def test_a_plan_the_pre_trade_check_refuses_is_named_with_the_orders(paper, simulator):
    simulator.simulator.set_account(trading_blocked=True)

    plan = by_check(diagnose(paper(), stderr_level=QUIET))["plan"]

    assert plan.verdict is Verdict.REFUSE
    assert "buy " in plan.detail
    assert plan.detail.endswith("; refused: account PA0SIMULATOR is blocked from trading")


def test_refused_keys_fail_every_broker_check_in_one_line_each(paper, monkeypatch):
    monkeypatch.setenv("ALPACA_SECRET_KEY", "not-the-secret")

    findings = diagnose(paper(), stderr_level=QUIET)

    broken = [f for f in findings if not f.ok]
    assert {f.check for f in broken} >= {"daily bars", "account", "broker clock", "assets"}
    assert {f.verdict for f in broken} == {Verdict.ERROR}
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


def test_tecl_doctor_exits_0_when_a_run_would_trade_2_when_it_would_refuse_1_on_error(
    tmp_path, simulator_process
):
    good = tecl(["doctor"], tmp_path, **paper_at(simulator_process))
    assert good.returncode == 0, good.stderr
    assert [line.split()[0] for line in good.stdout.splitlines()] == ["ok"] * 8
    assert good.stderr == ""

    bad = tecl(["doctor"], tmp_path, **paper_at(simulator_process, TECL_DATA_FEED="sip"))
    assert bad.returncode == 2
    assert "Traceback" not in bad.stdout + bad.stderr
    assert bad.stderr.strip() == (
        "tecl doctor: a run would refuse on 2 check(s): daily bars, latest trades (sip)"
    )

    broken = tecl(
        ["doctor"], tmp_path, **paper_at(simulator_process, ALPACA_SECRET_KEY="not-the-secret")
    )
    assert broken.returncode == 1
    assert broken.stderr.startswith("tecl doctor: could not check ")
    assert "not-the-secret" not in broken.stdout + broken.stderr


@pytest.mark.parametrize("kind", list(AccountKind), ids=lambda k: k.value)
@pytest.mark.parametrize("plan", list(DataPlan), ids=lambda p: p.value)
def test_every_account_kind_and_data_plan(paper, simulator, kind, plan):
    """What the doctor says of each simulator mode: the account's kind named, buys from
    cash only, and SIP data allowed only on a plan that includes them."""
    simulator.simulator.set_account(kind=kind)
    simulator.simulator.set_data_plan(plan)

    iex = by_check(diagnose(paper(), stderr_level=QUIET))
    sip = diagnose(paper(data_feed=DataFeed.SIP), stderr_level=QUIET)

    named = {
        AccountKind.CASH: "a cash account",
        AccountKind.MARGIN: "a margin account",
        AccountKind.PDT: "a pattern day trader's margin account",
    }[kind]
    assert iex["account"].ok and named in iex["account"].detail
    assert all(f.ok for f in iex.values()), [f.line for f in iex.values()]
    expected = Verdict.REFUSE if plan is DataPlan.BASIC else Verdict.OK
    assert exit_verdict(sip) is expected, [f.line for f in sip]
    assert sim_state(simulator.url)["submissions"] == []


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 24, 18, 0, tzinfo=EXCHANGE_TZ),
        datetime(2026, 11, 28, 11, 0, tzinfo=EXCHANGE_TZ),
    ],
    ids=["the evening after the session", "a Saturday"],
)
def test_after_the_close_and_at_the_weekend_a_healthy_setup_passes(paper, simulator, moment):
    """The doctor is run when a person sets things up, seldom at 15:45: the session's last
    trades are judged at its close, not at the hours since."""
    simulator.simulator.set_clock(moment)

    findings = diagnose(paper(), stderr_level=QUIET)

    assert exit_verdict(findings) is Verdict.OK, [f.line for f in findings]
    assert by_check(findings)["plan"].detail.startswith("session 2026-11-2")


def test_a_journal_that_cannot_be_read_is_named(paper, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be")

    journal = by_check(diagnose(paper(state_uri=blocker.as_uri()), stderr_level=QUIET))["journal"]

    assert not journal.ok and "not-a-directory" in journal.detail, journal.line


def test_a_record_that_is_not_one_is_named_and_left_for_the_next_run_to_quarantine(paper, tmp_path):
    """The doctor reads the journal read-only: a bad object stays where it is, named, so the
    next run still quarantines it and alerts. Moved by the doctor, no alert would ever come
    (the doctor sends none, and the run would find nothing to move)."""
    journal = LocalJournal(tmp_path / "state" / "journal")
    journal.append(
        SessionRecord(
            session=EARLIER,
            run_id="run-earlier",
            written_at=datetime(2024, 3, 28, 20, 0, tzinfo=UTC),
            data_source="csv replay",
            broker="simulator",
            leaf="B4b",
            reason="bull",
            weights={"TECL": Decimal(1)},
            orders=[],
            positions={},
            cash=Decimal(1000),
            equity=Decimal(1000),
        )
    )
    garbage = tmp_path / "state" / "journal" / "sessions" / str(LATER) / "99999999T999999Z.json"
    garbage.parent.mkdir(parents=True)
    garbage.write_text("{")

    findings = diagnose(paper(), stderr_level=QUIET)

    checks = by_check(findings)
    assert checks["journal"].detail.endswith(
        f"readable, the last valid record is session {EARLIER}"
    )
    assert checks["journal record"].line.startswith(
        f"ok      journal record: {garbage} is not a valid session record ("
    )
    assert checks["journal record"].detail.endswith(
        "; left in place: the next run will quarantine it and alert"
    )
    # A run still trades with the records around it: the exit status is a run's.
    assert exit_verdict(findings) is Verdict.OK
    assert garbage.read_text() == "{", "left in place"
    assert not (tmp_path / "state" / "journal" / "quarantine").exists()
