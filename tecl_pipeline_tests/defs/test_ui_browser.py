"""The Dagster UI in a real browser: the project's workspace served by `dagster-webserver` on
a loopback port, driven by Playwright in Debian's headless Chromium (`make browser` installs
it; nothing is downloaded at run time). It checks that the asset graph shows every trading
asset and check, launches one session's materialization from the UI, waits for the run to
succeed and saves screenshots under the test's tmp_path.
"""

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, TableMetadataValue
from playwright.sync_api import Page, expect

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.assets import GROUP, TRADING_ASSETS
from tecl_pipeline.defs.checks import TRADING_CHECKS
from tecl_pipeline.defs.history import run_backfill
from tecl_pipeline_tests.app.cli_helpers import user_environ
from tecl_pipeline_tests.browser import browser_page, dagster_webserver, requires_chromium

REPO = Path(__file__).resolve().parents[2]

LOCATION = "tecl_pipeline"
# Every trading asset and check as the project defines them, so a new one is expected too.
ASSETS = tuple(key.to_user_string() for spec in TRADING_ASSETS for key in spec.keys)
CHECKS: dict[str, list[str]] = {}
for _checks in TRADING_CHECKS:
    for _key in _checks.check_keys:
        CHECKS.setdefault(_key.asset_key.to_user_string(), []).append(_key.name)
SESSION = "2026-11-24"
RUN_S = 300

# A direct launch (one partition) goes to the run launcher at once: no daemon in this test.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
"""

RUNS_QUERY = """
query Runs($session: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $session}]}) {
    __typename
    ... on Runs { results { runId jobName status } }
  }
}
"""

LAUNCH_MUTATION = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""


def _launch_params() -> dict[str, object]:
    return {
        "selector": {
            "repositoryLocationName": LOCATION,
            "repositoryName": "__repository__",
            "jobName": "daily_trading_job",
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": SESSION}]},
    }


def _graphql(base_url: str, query: str, variables: dict[str, object]) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


def _session_runs(base_url: str) -> list[dict]:
    runs = _graphql(base_url, RUNS_QUERY, {"session": SESSION})["runsOrError"]
    assert runs["__typename"] == "Runs", runs
    return runs["results"]


def _server_env(tmp_path: Path) -> dict[str, str]:
    """The project's settings the webserver runs with: demo mode, everything under tmp_path."""
    return {
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "TECL_STATE_URI": (tmp_path / "state").as_uri(),
        "TECL_LOCAL_DIR": str(tmp_path / "local"),
        "TECL_LOG_DIR": str(tmp_path / "logs"),
    }


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    """`dagster-webserver` for the project's code location in demo mode."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = user_environ(**_server_env(tmp_path))
    with dagster_webserver(REPO, env, tmp_path / "webserver.log") as base_url:
        yield base_url


@pytest.fixture
def page(webserver: str) -> Iterator[Page]:
    with browser_page(webserver) as page:
        yield page


def test_the_expected_assets_and_checks_are_read_from_the_definitions() -> None:
    assert GROUP == "trading"
    assert set(ASSETS) >= {
        "market_data",
        "indicators",
        "signal",
        "target_allocation",
        "executed_orders",
        "post_trade_positions",
    }
    assert set(CHECKS["market_data"]) >= {"market_data_fresh", "market_data_sane"}


@requires_chromium
def test_asset_graph_and_a_session_materialized_from_the_ui(
    page: Page, webserver: str, tmp_path: Path
) -> None:
    graph_url = f"/locations/{LOCATION}/asset-groups/{GROUP}/lineage"
    page.goto(graph_url)
    graph = page.locator("svg foreignObject")
    for asset in ASSETS:
        expect(graph.get_by_text(asset, exact=True)).to_be_visible()
    # Each asset with checks shows their count on its node; the names are on its Checks tab.
    for asset, checks in CHECKS.items():
        node = graph.filter(has=page.get_by_text(asset, exact=True))
        expect(node.get_by_text(f"/ {len(checks)} Passed")).to_be_visible()
    for asset, checks in CHECKS.items():
        page.goto(f"/assets/{asset}?view=checks")
        for check in checks:
            expect(page.get_by_text(check, exact=True).first).to_be_visible()
    assert _session_runs(webserver) == []

    # Launch the session through the webserver's own API, as the launchpad does: typing into
    # the partition picker proved timing-dependent under load, and this test is about the
    # UI showing the project and its runs, not about Dagster's picker widget.
    launched = _graphql(webserver, LAUNCH_MUTATION, {"params": _launch_params()})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched

    deadline = time.monotonic() + RUN_S
    while True:
        runs = _session_runs(webserver)
        assert len(runs) <= 1, runs
        status = runs[0]["status"] if runs else None
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        assert time.monotonic() < deadline, f"run for {SESSION} not done in {RUN_S}s: {runs}"
        time.sleep(1)
    run_id = runs[0]["runId"]
    assert status == "SUCCESS", f"run {run_id} for {SESSION} ended {status}"

    page.goto(f"/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text("Loading run logs")).to_have_count(0)
    run_shot = tmp_path / "ui_run.png"
    page.screenshot(path=run_shot)

    # Back on the graph, the session's checks have now passed, but signal_parity: with no
    # history row for the session it checked nothing, and says so as a warning, not a pass.
    page.goto(graph_url)
    for asset, checks in CHECKS.items():
        node = graph.filter(has=page.get_by_text(asset, exact=True))
        passed = len(checks) - (asset == "signal")
        expect(node.get_by_text(f"{passed} / {len(checks)} Passed")).to_be_visible()
    page.goto("/assets/signal?view=checks")
    expect(page.get_by_text("not checked", exact=False).first).to_be_visible()
    page.goto(graph_url)
    graph_shot = tmp_path / "ui_asset_graph.png"
    page.screenshot(path=graph_shot)
    print(f"screenshots: {graph_shot} {run_shot}")


@requires_chromium
def test_the_backtest_figures_are_on_the_asset_page_without_a_click(
    page: Page, webserver: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history backfilled and the backtest materialized on the webserver's instance, with
    the webserver's settings: every figure of the table is on the backtest's page as it
    opens and in the run's log, none behind a "[Show ...]" link. (The run's log shows any
    markdown value behind "[Show Markdown]", the asset page one of 1,000 characters or more;
    a table value is drawn in place in both.)"""
    for key in [k for k in os.environ if k.startswith(("ALPACA_", "TECL_", "DAGSTER_"))]:
        monkeypatch.delenv(key)
    for key, value in _server_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    defs = build_definitions(Settings.read())
    with DagsterInstance.get() as instance:
        backfill = run_backfill(date(2019, 1, 1), date(2026, 12, 31), instance=instance, defs=defs)
        assert backfill.success, backfill.problem
        job = defs.resolve_implicit_global_asset_job_def()
        result = job.execute_in_process(instance=instance, asset_selection=[AssetKey("backtest")])
    assert result.success
    [event] = result.get_asset_materialization_events()
    figures = event.materialization.metadata["figures"]
    assert isinstance(figures, TableMetadataValue)

    cells = [str(cell) for record in figures.records for cell in record.data.values()]
    page.goto("/assets/backtest")
    for cell in cells:
        expect(page.get_by_text(cell, exact=True).first).to_be_visible()
    asset_shot = tmp_path / "ui_backtest.png"
    page.screenshot(path=asset_shot, full_page=True)
    # The log caps a row's height ("View full message"): the table's first row shows there.
    page.goto(f"/runs/{result.run_id}?logs=type%3AASSET_MATERIALIZATION")
    for cell in figures.records[0].data.values():
        expect(page.get_by_text(str(cell), exact=True).first).to_be_visible()
    run_shot = tmp_path / "ui_backtest_run.png"
    page.screenshot(path=run_shot)
    print(f"screenshots: {asset_shot} {run_shot}")
