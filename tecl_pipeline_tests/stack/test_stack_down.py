"""`make stack-down` leaves nothing behind: every service, every process they started (the
code server's own server process, run workers, PostgreSQL's backends) and every port.
Collected last (conftest): the stack is gone after it."""

import socket
import subprocess
import sys
from pathlib import Path

from deploy.stack.local import alive, marked_processes
from tecl_pipeline_tests.stack.conftest import REPO, Stack


def descendants(pid: int) -> set[int]:
    found = {pid}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found |= descendants(int(child))
    return found


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_stack_down_leaves_no_process_or_port_behind(stack: Stack):
    states = stack.local.status()
    assert all(state.pid for state in states), states
    processes = set().union(*(descendants(state.pid) for state in states if state.pid))
    processes |= set(marked_processes(stack.plan.stack_dir))
    ports = [port for s in stack.plan.services for port in s.ports.values()]
    ports.append(int(stack.simulator_url.rsplit(":", 1)[1]))
    # The code server runs its code in a child process, PostgreSQL has its own: more
    # processes than services.
    assert len(processes) > len(states)
    assert all(listening(port) for port in ports)

    done = subprocess.run(
        [sys.executable, "-m", "deploy.stack", "down"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "left over" not in done.stdout, done.stdout
    assert sorted(pid for pid in processes if alive(pid)) == []
    assert marked_processes(stack.plan.stack_dir) == []
    assert [port for port in ports if listening(port)] == []
    assert [state.name for state in stack.local.status() if state.pid] == []
