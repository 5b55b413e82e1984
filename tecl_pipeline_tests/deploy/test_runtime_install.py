"""The product runs on its runtime lock alone: a fresh virtual environment with only
requirements/runtime.lock (hash-checked, no dependency resolution) and the project's wheel
imports every module of the package, answers `tecl --help`, runs a demo session, replays
history, and `tecl soak`, which needs the development install, says what to install.

It needs the package index (PyPI) or uv's cache for the locked wheels.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from tecl_pipeline.core.universe import SYMBOLS
from tecl_pipeline.defs.partitions import CALENDAR
from tecl_pipeline.harness.soak import DEV_INSTALL
from tecl_pipeline.harness.world import write_market_dir
from tecl_pipeline.marketdata.demo import DEMO_SEED, DemoMarketData

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
# Development-only distributions (requirements/dev.lock, not runtime.lock) the package
# could reach for: none of them may be importable, or imported, on a runtime install.
DEV_ONLY = ("moto", "pytest", "hypothesis", "playwright", "flask", "tecl_pipeline_tests")
# The variables a developer's shell or the test run may carry that would steer `tecl`.
STEERING = ("TECL_", "DAGSTER_", "ALPACA_", "AWS_", "COVERAGE_", "VIRTUAL_ENV", "PYTHON")

pytestmark = pytest.mark.xdist_group("runtime_install")


@dataclass(frozen=True)
class RuntimeInstall:
    python: Path
    tecl: Path
    work: Path

    def env(self, **values: str) -> dict[str, str]:
        """A clean environment: this machine's PATH and HOME, the run's own state dirs."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(STEERING)}
        env.update(
            DAGSTER_HOME=str(self.work / "dagster"),
            TECL_STATE_URI=(self.work / "state").as_uri(),
            TECL_LOCAL_DIR=str(self.work / "local"),
            TECL_LOG_DIR=str(self.work / "logs"),
        )
        env.update(values)
        return env

    def run(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        (self.work / "dagster").mkdir(exist_ok=True)
        return subprocess.run(
            [str(self.tecl), *args],
            cwd=self.work,
            env=dict(env) if env is not None else self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _checked(
    command: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def runtime_install(tmp_path_factory: pytest.TempPathFactory) -> RuntimeInstall:
    base = tmp_path_factory.mktemp("runtime-install")
    venv = base / "venv"
    _checked([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    lock = ROOT / "requirements" / "runtime.lock"
    uv_install = (str(UV), "pip", "install", "--quiet", "--python", str(python), "--no-deps")
    _checked([*uv_install, "--require-hashes", "-r", str(lock)])
    # The wheel is built from a copy by the dev lock's setuptools (no build isolation, so
    # no unpinned download), then installed like any user's: not editable, no dependencies.
    source = base / "source"
    shutil.copytree(
        ROOT / "tecl_pipeline",
        source / "tecl_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    dist = base / "dist"
    pip_wheel = (sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps")
    _checked([*pip_wheel, "--no-build-isolation", "--wheel-dir", str(dist), str(source)])
    (wheel,) = dist.glob("tecl_pipeline-*.whl")
    _checked([*uv_install, str(wheel)])
    work = base / "work"
    work.mkdir()
    return RuntimeInstall(python, venv / "bin" / "tecl", work)


IMPORT_EVERY_MODULE = f"""
import importlib, importlib.resources, importlib.util, pkgutil, sys
import tecl_pipeline

dev_only = {DEV_ONLY!r}
absent = [name for name in dev_only if importlib.util.find_spec(name) is None]
assert absent == list(dev_only), f"not a runtime install: {{set(dev_only) - set(absent)}}"
assert importlib.resources.files("tecl_pipeline").joinpath("py.typed").is_file()
names = [m.name for m in pkgutil.walk_packages(tecl_pipeline.__path__, "tecl_pipeline.")]
for name in names:
    importlib.import_module(name)
print(len(names), tecl_pipeline.__file__)
"""


def test_every_module_imports_on_the_runtime_lock_alone(runtime_install):
    """Every module of the package, the harness's too, imports on the runtime lock (no
    development package is even installed), from the installed wheel, which ships
    py.typed."""
    done = _checked(
        [str(runtime_install.python), "-c", IMPORT_EVERY_MODULE],
        cwd=runtime_install.work,
        env=runtime_install.env(),
    )
    count, location = done.stdout.split()
    expected = sum(1 for _ in (ROOT / "tecl_pipeline").rglob("*.py")) - 1  # not the root
    assert int(count) == expected
    assert Path(location).is_relative_to(runtime_install.python.parents[1])


def test_tecl_help_answers_on_the_runtime_lock(runtime_install):
    done = runtime_install.run("--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "soak", "replay"):
        assert command in done.stdout


def test_a_demo_session_runs_on_the_runtime_lock(runtime_install):
    """The product's own promise on its runtime install: `tecl run` in demo mode trades the
    session and exits 0 with its report."""
    done = runtime_install.run("run", env=runtime_install.env(TECL_MODE="demo"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "session " in done.stdout
    assert "decision " in done.stdout


def test_replay_runs_on_the_runtime_lock(runtime_install):
    """The replay needs no development package: two sessions of (demo) history through the
    pipeline, every session as signal_history says."""
    print(f"seed={DEMO_SEED}")
    first = date(2021, 11, 29)
    through = first + timedelta(days=1)
    source = DemoMarketData(
        CALENDAR, now=lambda: CALENDAR.close_time(through) + timedelta(hours=1), seed=DEMO_SEED
    )
    market = write_market_dir(source.closes(SYMBOLS, through), runtime_install.work / "market")
    span = ("--start", first.isoformat(), "--end", through.isoformat())
    done = runtime_install.run("replay", *span, "--data-dir", str(market))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"replay {first}..{through}: sessions=2 runs_failed=0 " in done.stdout
    assert done.stdout.rstrip().endswith(" mismatches=0")


def test_soak_on_the_runtime_lock_names_the_development_install(runtime_install):
    """The soak's AWS is moto's server, a development package: on the runtime install the
    command fails at once with one line saying what to install, exit 1, no traceback."""
    done = runtime_install.run("soak", "--sessions", "1", "--seed", "1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [DEV_INSTALL]
    assert "requirements/dev.lock" in DEV_INSTALL


def test_soak_without_moto_stops_before_any_work(monkeypatch, capsys):
    """The same promise in this process, with moto's server made unimportable: one line on
    stderr and nothing on stdout (not even the seed line the soak starts with), exit 1."""
    from tecl_pipeline.app import cli

    monkeypatch.setitem(sys.modules, "moto.server", None)
    assert cli.main(["soak", "--sessions", "1", "--seed", "1"]) == 1
    out, err = capsys.readouterr()
    assert (out, err.splitlines()) == ("", [DEV_INSTALL])
