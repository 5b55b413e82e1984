"""The journal on S3 failing under whole runs of daily_trading_job: the bucket missing or in
the wrong place (A5), access denied (A4), S3 throttling throughout (A9), and a journal
write that fails after the orders were sent (D1). S3 is moto in server mode on loopback,
with the fault proxy in front of it where moto cannot produce the failure."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from tecl_pipeline.config.settings import Settings
from tecl_pipeline_tests.adapters.aws.moto_fixtures import FaultProxy
from tecl_pipeline_tests.failure_modes.helpers import (
    materialized,
    read_alerts,
    run_session,
    stop_reasons,
)

SESSION = date(2026, 11, 24)
PREFIX = "tecl"


def s3_settings(tmp_path: Path, bucket: str) -> Settings:
    return Settings(
        state_uri=f"s3://{bucket}/{PREFIX}",
        local_dir=tmp_path / "local",
        log_dir=tmp_path / "logs",
    )


def demo_book_orders(tmp_path: Path) -> list[dict]:
    book = tmp_path / "local" / "demo-broker" / "account.json"
    return json.loads(book.read_text())["orders"] if book.exists() else []


def keys(moto_s3: Any, bucket: str, prefix: str = "") -> list[str]:
    listed = moto_s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def through_proxy(monkeypatch, proxy: FaultProxy) -> None:
    """Every S3 client the pipeline builds from the environment talks to the fault proxy."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)


def refusal_alert(tmp_path: Path) -> dict:
    [alert] = [a for a in read_alerts(tmp_path / "logs") if a["kind"] == "refused"]
    return alert


def assert_stopped_before_trading(result, tmp_path: Path) -> None:
    assert not result.success
    assert "executed_orders" not in materialized(result)
    assert demo_book_orders(tmp_path) == []


# -- A5: missing bucket / wrong region: a clear error at preflight, before trading ------------


def test_missing_state_bucket_refuses_at_preflight_naming_it(tmp_path, aws_sandbox, s3_bucket):
    """A5: the configured bucket does not exist: the run refuses before any order, naming
    the bucket and NoSuchBucket, and the refusal is alerted."""
    missing = f"{s3_bucket}-missing"

    result = run_session(s3_settings(tmp_path, missing), SESSION)

    assert_stopped_before_trading(result, tmp_path)
    reasons = stop_reasons(result)
    assert "journal preflight failed" in reasons
    assert missing in reasons and "NoSuchBucket" in reasons
    assert missing in refusal_alert(tmp_path)["detail"]


def test_state_bucket_in_another_region_refuses_at_preflight(tmp_path, aws_sandbox, make_s3_client):
    """A5: the bucket lives in eu-west-1 while the pipeline's AWS region is us-east-1: the
    run refuses before any order, naming both regions."""
    bucket = f"journal-eu-{uuid.uuid4().hex[:20]}"
    make_s3_client(region="eu-west-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )

    result = run_session(s3_settings(tmp_path, bucket), SESSION)

    assert_stopped_before_trading(result, tmp_path)
    reasons = stop_reasons(result)
    assert "eu-west-1" in reasons and "us-east-1" in reasons


# -- A4: AccessDenied: named action and resource, no trading without the state -----------------


def test_access_denied_on_the_journal_refuses_before_trading_naming_action_and_resource(
    tmp_path, s3_bucket, fault_proxy, monkeypatch
):
    """A4: the pipeline's identity may not write the journal (PutObject AccessDenied): the run
    refuses before any order, naming s3:PutObject, the bucket and AccessDenied."""
    through_proxy(monkeypatch, fault_proxy)
    fault_proxy.inject("PutObject", "access_denied")

    result = run_session(s3_settings(tmp_path, s3_bucket), SESSION)

    assert_stopped_before_trading(result, tmp_path)
    reasons = stop_reasons(result)
    assert "s3:PutObject" in reasons and "AccessDenied" in reasons
    assert f"s3://{s3_bucket}" in reasons
    assert "s3:PutObject" in refusal_alert(tmp_path)["detail"]


# -- A9: an S3 outage: fail closed, nothing half-done, alert ------------------------------------


def test_s3_outage_fails_closed_leaving_nothing_half_done(
    tmp_path, s3_bucket, fault_proxy, moto_s3, monkeypatch
):
    """A9: S3 answers 503 SlowDown to everything: after bounded retries the run refuses
    before any order; no journal object, probe or half-written record is left in the
    bucket, and the refusal is alerted."""
    through_proxy(monkeypatch, fault_proxy)
    fault_proxy.inject("*", "slow_down")

    result = run_session(s3_settings(tmp_path, s3_bucket), SESSION)

    assert_stopped_before_trading(result, tmp_path)
    assert "throttling or unavailable" in stop_reasons(result)
    assert keys(moto_s3, s3_bucket) == []
    assert "SlowDown" in refusal_alert(tmp_path)["detail"]


# -- D1: a failed journal write is spooled and replayed, never dropped --------------------------


def test_failed_journal_write_after_trading_is_spooled_and_written_by_the_next_run(
    tmp_path, s3_bucket, fault_proxy, moto_s3, monkeypatch
):
    """D1: the orders of a session are sent, then writing its record is denied: the step
    fails loudly, the record waits in this machine's spool (alerted), nothing is half
    written in S3; the next run, with S3 healthy again, writes the spooled record first,
    and it reads back as that session's record."""
    through_proxy(monkeypatch, fault_proxy)
    fault_proxy.inject("PutObject", "access_denied", key_contains="/sessions/")
    settings = s3_settings(tmp_path, s3_bucket)
    first_session, next_session = date(2026, 11, 23), SESSION

    first = run_session(settings, first_session)

    assert not first.success
    assert first.asset_value("executed_orders").sent, "the orders went out before the write"
    assert "post_trade_positions" not in materialized(first)
    assert "s3:PutObject" in stop_reasons(first) and "AccessDenied" in stop_reasons(first)
    assert len(list((tmp_path / "local" / "spool").glob("*.json"))) == 1
    assert keys(moto_s3, s3_bucket, f"{PREFIX}/journal/sessions/") == []
    assert [a for a in read_alerts(tmp_path / "logs") if a["kind"] == "spooled"]

    fault_proxy.clear()
    second = run_session(settings, next_session)

    assert second.success
    [allocation] = second.asset_materializations_for_node("target_allocation")
    assert allocation.metadata["spooled_records_replayed"].value == 1
    assert allocation.metadata["previous_record"].value == f"{first_session} run {first.run_id}"
    assert list((tmp_path / "local" / "spool").glob("*.json")) == []
    stored = keys(moto_s3, s3_bucket, f"{PREFIX}/journal/sessions/")
    assert [k.split("/")[-2] for k in stored] == [str(first_session), str(next_session)]
    body = moto_s3.get_object(Bucket=s3_bucket, Key=stored[0])["Body"].read()
    assert json.loads(body)["run_id"] == first.run_id
