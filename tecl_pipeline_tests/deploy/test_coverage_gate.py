"""R7: `make test` enforces line coverage of `tecl_pipeline` of at least 90%.

Read from what `make -n test` would really run (prerequisites' recipes print too, and are
ignored), together with the coverage configuration in pyproject.toml, so that removing the
gate, lowering it, pointing it elsewhere or switching it to branch coverage fails here.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GATE = 90.0
PACKAGE = "tecl_pipeline"
SMALL_SAMPLE = "tecl_pipeline_tests/common/test_endpoints.py"


def make_test_pytest_commands() -> list[list[str]]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed; `make test` cannot run here either")
    done = subprocess.run(
        ["make", "-n", "test"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    commands = [shlex.split(line) for line in done.stdout.splitlines() if "-m pytest" in line]
    return [c[c.index("pytest") + 1 :] for c in commands]


def coverage_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]


def option(args: list[str], name: str) -> list[str]:
    """Every value of `--name=value` / `--name value` / a bare `--name` ("") in args."""
    values = []
    for index, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            values.append(arg.split("=", 1)[1])
        elif arg == name:  # a following option is not a value: `--cov --cov-report=...`
            following = args[index + 1] if index + 1 < len(args) else "-"
            values.append("" if following.startswith("-") else following)
    return values


def test_make_test_enforces_line_coverage_gate():
    commands = make_test_pytest_commands()
    assert len(commands) == 1, f"`make test` should run pytest once, got {commands}"
    (args,) = commands
    tool = coverage_config()
    run = tool.get("coverage", {}).get("run", {})
    report = tool.get("coverage", {}).get("report", {})
    addopts = shlex.split(tool.get("pytest", {}).get("ini_options", {}).get("addopts", ""))

    # Coverage is on, and measures the package.
    assert "--no-cov" not in args + addopts, "coverage is switched off"
    plugins_off = {"no:cov", "no:pytest_cov"} & set(option(args + addopts, "-p"))
    assert not plugins_off, f"pytest-cov is disabled: {plugins_off}"
    sources = option(args, "--cov")
    assert sources, f"`make test` runs pytest without --cov: {args}"
    assert all(s in ("", PACKAGE) for s in sources), sources
    if "" in sources:  # a bare --cov takes its source from the config
        assert run.get("source") == [PACKAGE]

    # The gate: the command line's --cov-fail-under wins over the config's fail_under.
    assert not option(addopts, "--cov-fail-under"), "a gate in addopts would apply everywhere"
    given = option(args, "--cov-fail-under")
    gate = float(given[-1]) if given else float(report.get("fail_under", 0))
    assert gate >= GATE, f"`make test` fails below {gate}% line coverage, not {GATE}%"
    # `coverage report` on its own holds the same line.
    assert float(report.get("fail_under", 0)) >= GATE

    # Line coverage: with branch=true the percentage would mix in branches.
    assert run.get("branch", False) is False
    # What the tests run as processes (the `tecl` CLI, the simulator) is measured too.
    assert "subprocess" in run.get("patch", [])


def test_the_gates_command_fails_when_coverage_is_below_it(tmp_path):
    """The flags do what the gate promises: one small test file covers far less than 90%
    of the package, and the same pytest command line then exits non-zero, saying so. On one
    file, in the pytest process itself (`-n 0` after the command's own worker count): the
    gate is about the coverage flags, and workers would each load the package for nothing."""
    (args,) = make_test_pytest_commands()
    args = [*args, "-n", "0"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    environ["COVERAGE_FILE"] = str(tmp_path / ".coverage")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider", SMALL_SAMPLE],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0, done.stdout
    assert f"Required test coverage of {GATE:g}% not reached" in done.stdout, done.stdout[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout
