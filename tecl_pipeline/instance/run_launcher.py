"""Dagster's default run launcher, able to tell run monitoring whether a run is still
running.

The default launcher asks the code server to start each run in a process of its own; it
cannot say whether that process is alive, so run monitoring leaves a run whose process died
with its code server (a container replaced, a host restarted) as STARTED until the maximum
runtime, 30 minutes: past the session's close, with its failure alert that late too. This one
asks the code server named in the run's tags whether it still has the run's process. A code
server that answers without it (it died, or a new one took its place) means the run's
process is gone: FAILED, and run monitoring marks the run failed, which the failure sensor
alerts. A code server that does not answer yet says nothing about the run: RUNNING, until it
answers or the maximum runtime passes.
"""

import json
from typing import TYPE_CHECKING

from dagster import DefaultRunLauncher
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult
from dagster._serdes import deserialize_value

if TYPE_CHECKING:
    from dagster import DagsterRun

HEALTH_CHECK_TIMEOUT_SECONDS = 10


class CodeServerRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: "DagsterRun") -> CheckRunHealthResult:
        info = run.tags.get(GRPC_INFO_TAG)
        if info is None:
            # Not started by a code server (a `tecl run` in its own process): not ours to judge.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not started by a code server")
        where = json.loads(info)
        client = DagsterGrpcClient(
            port=where.get("port"),
            socket=where.get("socket"),
            host=where.get("host"),
            use_ssl=bool(where.get("use_ssl", False)),
        )
        try:
            answer = client.can_cancel_execution(
                CanCancelExecutionRequest(run_id=run.run_id),
                timeout=HEALTH_CHECK_TIMEOUT_SECONDS,
            )
        except DagsterUserCodeUnreachableError:
            return CheckRunHealthResult(
                WorkerStatus.RUNNING,
                "the code server does not answer; assumed running until it does",
                transient=True,
            )
        if deserialize_value(answer, CanCancelExecutionResult).can_cancel:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the code server at {where.get('host')}:{where.get('port')} has no process for "
            "this run: it ended without reporting (its container or host stopped)",
        )
