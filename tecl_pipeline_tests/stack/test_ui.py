"""The stack's webserver in a real browser (as defs/test_ui_browser.py does for a webserver
of its own): the runs the daemon executed on PostgreSQL are listed and open, and the code
server's assets are drawn."""

from dagster import DagsterRunStatus, RunsFilter
from playwright.sync_api import expect

from tecl_pipeline.defs.assets import GROUP, TRADING_ASSETS
from tecl_pipeline_tests.browser import browser_page, requires_chromium
from tecl_pipeline_tests.stack.conftest import JOB, LOCATION, Stack

ASSETS = tuple(key.to_user_string() for spec in TRADING_ASSETS for key in spec.keys)


@requires_chromium
def test_the_stack_webserver_shows_the_runs_and_the_assets(stack: Stack, tmp_path):
    runs = stack.instance.get_runs(
        RunsFilter(job_name=JOB, statuses=[DagsterRunStatus.SUCCESS]), limit=1
    )
    assert runs, "no successful run on the stack yet: this test runs after the others"
    run = runs[0]
    with browser_page(stack.webserver_url) as page:
        page.goto("/runs")
        expect(page.get_by_role("link", name=f"run {run.run_id[:8]}")).to_be_visible()
        expect(page.get_by_role("link", name=JOB).first).to_be_visible()
        partition = run.tags["dagster/partition"]
        expect(page.get_by_text(f"partition: {partition}").first).to_be_visible()
        page.goto(f"/runs/{run.run_id}")
        expect(page.get_by_text("Success", exact=True).first).to_be_visible()
        expect(page.get_by_text("Loading run logs")).to_have_count(0)
        page.screenshot(path=tmp_path / "stack_run.png")
        page.goto(f"/locations/{LOCATION}/asset-groups/{GROUP}/lineage")
        graph = page.locator("svg foreignObject")
        for asset in ASSETS:
            expect(graph.get_by_text(asset, exact=True)).to_be_visible()
        page.screenshot(path=tmp_path / "stack_assets.png")
    print(f"screenshots: {tmp_path}")
