"""The stack's run launcher tells run monitoring the truth about a run's process: the code
server named in the run's tags, a real one here, is asked whether it still has it."""

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterRun, instance_for_test
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.client import DagsterGrpcClient

from tecl_pipeline.instance.run_launcher import CodeServerRunLauncher

DEFS = """
from dagster import Definitions, job, op

@op
def nothing():
    pass

@job
def idle():
    nothing()

defs = Definitions(jobs=[idle])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def code_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    folder = tmp_path_factory.mktemp("code_server")
    (folder / "defs.py").write_text(DEFS)
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen(
        [str(dagster), "api", "grpc", "-h", "127.0.0.1", "-p", str(port), "-f", "defs.py"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = DagsterGrpcClient(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 60
        while True:
            try:
                client.ping("up")
                break
            except Exception:
                assert time.monotonic() < deadline, "the code server did not start"
                time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def run_started_by(port: int | None) -> DagsterRun:
    tags = {} if port is None else {GRPC_INFO_TAG: json.dumps({"host": "127.0.0.1", "port": port})}
    return DagsterRun(job_name="daily_trading_job", run_id="5b1e5d2c-dead-run", tags=tags)


def health(run: DagsterRun):
    with instance_for_test() as instance:
        launcher = CodeServerRunLauncher()
        launcher.register_instance(instance)
        assert launcher.supports_check_run_worker_health
        return launcher.check_run_worker_health(run)


def test_a_run_its_code_server_no_longer_has_is_failed(code_server):
    result = health(run_started_by(code_server))
    assert result.status == WorkerStatus.FAILED
    assert f"127.0.0.1:{code_server} has no process for this run" in (result.msg or "")


def test_a_code_server_that_does_not_answer_says_nothing_about_the_run():
    result = health(run_started_by(free_port()))
    assert result.status == WorkerStatus.RUNNING
    assert result.transient is True


def test_a_run_no_code_server_started_is_not_judged():
    assert health(run_started_by(None)).status == WorkerStatus.RUNNING
