"""How the account is doing, as a person sees it in a real browser: after a few replayed
sessions, live_performance's page shows the plot of live and backtest equity inline (no
click) with its figures, and the Plots tab of post_trade_positions draws equity and P&L by
session (partition), not by event."""

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterInstance
from playwright.sync_api import Page, expect

from tecl_pipeline.config.settings import Settings
from tecl_pipeline.definitions import build_definitions
from tecl_pipeline.defs.performance import LIVE_PERFORMANCE_JOB
from tecl_pipeline_tests.app.cli_helpers import user_environ
from tecl_pipeline_tests.browser import browser_page, dagster_webserver, requires_chromium

REPO = Path(__file__).resolve().parents[2]
SESSIONS = (date(2026, 7, 27), date(2026, 7, 28), date(2026, 7, 29), date(2026, 7, 30))
DAGSTER_YAML = "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"


@pytest.fixture
def replayed(tmp_path: Path, csv_dir: Callable[..., Path]) -> Iterator[str]:
    """A Dagster instance holding a few sessions traded on real closes and live_performance
    materialized after them, served by `dagster-webserver` with the same settings."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {
        "TECL_STATE_URI": (tmp_path / "state").as_uri(),
        "TECL_LOCAL_DIR": str(tmp_path / "local"),
        "TECL_LOG_DIR": str(tmp_path / "logs"),
        "TECL_DATA_DIR": str(csv_dir(SESSIONS[-1])),
    }
    settings = Settings.from_env(env, cwd=REPO)
    defs = build_definitions(settings)
    with DagsterInstance.from_config(str(home)) as instance:
        for session in SESSIONS:
            result = defs.resolve_job_def("daily_trading_job").execute_in_process(
                partition_key=session.isoformat(), instance=instance
            )
            assert result.success, session
        assert defs.resolve_job_def(LIVE_PERFORMANCE_JOB).execute_in_process(instance=instance)
    served = user_environ(DAGSTER_HOME=str(home), **env)
    with dagster_webserver(REPO, served, tmp_path / "webserver.log") as base_url:
        yield base_url


@pytest.fixture
def page(replayed: str) -> Iterator[Page]:
    with browser_page(replayed) as page:
        yield page


@requires_chromium
def test_live_performance_and_equity_by_session_are_on_their_pages(
    page: Page, tmp_path: Path
) -> None:
    page.goto("/assets/live_performance")
    # Inline: the image is on the page as it opens, not behind "[Show Markdown]".
    curves = page.get_by_role("img", name="live and backtest equity")
    expect(curves).to_be_visible()
    assert curves.evaluate("img => img.naturalWidth") > 0  # the data URI decoded to a picture
    expect(page.get_by_text("live - backtest", exact=True)).to_be_visible()
    for header in ("series", "return", "max drawdown"):
        expect(page.get_by_role("columnheader", name=header, exact=True).first).to_be_visible()
    expect(page.get_by_text("tracking_difference", exact=True)).to_be_visible()
    performance_shot = tmp_path / "ui_live_performance.png"
    page.screenshot(path=performance_shot, full_page=True)

    # The metadata's Plots view on the asset's overview; partitioned, it opens by partition.
    page.goto("/assets/post_trade_positions")
    page.get_by_text("Plots", exact=True).click()
    for label in ("equity", "day_pnl", "total_pnl", "drawdown"):
        expect(page.get_by_text(label, exact=True)).to_be_visible()
    # Dagster says this only when the x axis is the partition, i.e. one point per session.
    expect(page.get_by_text("When graphing values by partition", exact=False)).to_be_visible()
    assert page.locator("canvas").count() >= 4
    plots_shot = tmp_path / "ui_post_trade_plots.png"
    page.screenshot(path=plots_shot, full_page=True)
    print(f"screenshots: {performance_shot} {plots_shot}")
