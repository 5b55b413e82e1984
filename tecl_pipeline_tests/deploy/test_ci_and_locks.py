"""What CI promises, read from the files that define it: `.ci/run` (the CI entry point),
the Makefile, requirements/*.lock and pyproject.toml. Pinned, hash-checked dependencies
(C7, S6), one command that installs everything the tests need (R1), the infrastructure
linted (A7), the static security scan and the vulnerability scan in CI (S6, R6, C7)."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"tecl_pipeline", "tecl_pipeline_tests", "deploy", "bench"}


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# -- requirements/*.lock ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    name: str
    specifier: str
    hashes: tuple[str, ...]
    line: str


def lock_entries(text: str) -> Iterator[str]:
    """The lock's logical lines (continuations joined), comments and blanks dropped."""
    logical = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("--hash") else raw
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            yield logical.strip()
        logical = ""


def parse_lock(path: Path) -> list[Pin]:
    pins = []
    for entry in lock_entries(path.read_text()):
        requirement, *options = entry.split()
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?(.*)", requirement)
        assert match, f"unreadable lock entry: {entry}"
        hashes = tuple(o.removeprefix("--hash=") for o in options if o.startswith("--hash="))
        pins.append(Pin(normalize(match[1]), match[3], hashes, entry))
    return pins


RUNTIME_LOCK = REPO / "requirements" / "runtime.lock"
DEV_LOCK = REPO / "requirements" / "dev.lock"


@pytest.fixture(scope="module")
def pins() -> list[Pin]:
    """The dev lock: what `make install` installs (the runtime lock and the dev tools)."""
    return parse_lock(DEV_LOCK)


def declared(*groups: str) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for group in groups for r in project["optional-dependencies"][group]),
    ]
    return {normalize(re.split(r"[\s<>=!~;\[]", requirement)[0]) for requirement in requirements}


@pytest.mark.parametrize(
    ("lock", "groups"), [(RUNTIME_LOCK, ()), (DEV_LOCK, ("dev",))], ids=["runtime", "dev"]
)
def test_lock_pins_every_dependency_exactly_with_hashes(lock, groups):
    """C7/S6: every entry of a lock is one exact version (==) with at least one sha256 hash,
    no entry points elsewhere (URL, path, editable, extra index), and every dependency
    pyproject.toml declares for it (runtime; runtime and dev) is in it."""
    pins = parse_lock(lock)
    assert len(pins) > 50, "the lock must hold the whole resolved set, not a few names"
    for pin in pins:
        assert re.fullmatch(r"==[0-9][A-Za-z0-9.+!-]*(\s*;.*)?", pin.specifier), pin.line
        assert pin.hashes, f"{pin.name}: no --hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes), pin.line
    text = lock.read_text()
    for forbidden in ("--index-url", "--extra-index-url", "--find-links", "-e ", "git+", "file:"):
        assert forbidden not in text, forbidden
    assert declared(*groups) - {pin.name for pin in pins} == set()


def test_the_dev_lock_installs_the_runtime_lock_unchanged(pins):
    """What the tests run on is what production runs: every runtime pin is in the dev lock at
    the same version with the same hashes, and the runtime lock holds no dev tool."""
    dev = {pin.name: pin for pin in pins}
    runtime = parse_lock(RUNTIME_LOCK)
    for pin in runtime:
        assert pin.name in dev, f"{pin.name} is in the runtime lock only"
        assert (dev[pin.name].specifier, set(dev[pin.name].hashes)) == (
            pin.specifier,
            set(pin.hashes),
        ), pin.name
    dev_only = declared("dev") - declared()
    assert dev_only & {pin.name for pin in runtime} == set()


# -- the Makefile ------------------------------------------------------------------------------


@dataclass
class Makefile:
    variables: dict[str, str] = field(default_factory=dict)
    prerequisites: dict[str, list[str]] = field(default_factory=dict)
    recipes: dict[str, list[str]] = field(default_factory=dict)

    def expand(self, text: str, depth: int = 0) -> str:
        if depth > 10:
            return text
        expanded = re.sub(
            r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
            lambda m: self.variables.get(m[1], m[0]),
            text,
        )
        return expanded if expanded == text else self.expand(expanded, depth + 1)

    def reachable(self, target: str) -> list[str]:
        """`target` and every target it depends on, depth first, each once."""
        seen: list[str] = []

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.append(name)
            for prerequisite in self.prerequisites.get(name, []):
                visit(prerequisite)

        visit(target)
        return seen

    def commands(self, target: str) -> str:
        """Every recipe line that `make target` may run (its own and its prerequisites')."""
        return "\n".join(
            self.expand(line)
            for name in self.reachable(target)
            for line in self.recipes.get(name, [])
        )


def parse_makefile(path: Path) -> Makefile:
    make = Makefile()
    current: list[str] = []
    for raw in path.read_text().splitlines():
        if raw.startswith("\t"):
            for target in current:
                make.recipes.setdefault(target, []).append(raw.strip())
            continue
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        assignment = re.match(
            r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*(?::=|\?=|=)\s*(.*)$", line
        )
        if assignment:
            make.variables.setdefault(assignment[1], assignment[2].strip())
            current = []
            continue
        rule = re.match(r"^([^:=\s][^:=]*?)\s*:(?!=)\s*(.*)$", line)
        if rule:
            current = [make.expand(t) for t in rule[1].split()]
            for target in current:
                make.prerequisites.setdefault(target, []).extend(
                    make.expand(p) for p in rule[2].split()
                )
    return make


@pytest.fixture(scope="module")
def makefile() -> Makefile:
    return parse_makefile(REPO / "Makefile")


def test_ci_runs_make_test(makefile):
    """The CI entry point runs `make test` on a clean clone (at a lower priority, maybe,
    beside the replay: still the whole of it, and its failure fails CI under `set -e`)."""
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in commands
    assert any(re.fullmatch(r"(nice -n \d+ )?make test", command) for command in commands)
    assert "test" in makefile.prerequisites


def test_make_lint_and_make_test_check_the_layer_contracts_and_the_types(makefile):
    """A broken import contract (pyproject.toml [tool.importlinter]) or a type error that
    pyright finds ([tool.pyright], where a mypy-style `# type: ignore` silences nothing) fails
    `make lint`, and so `make test` and CI."""
    for target in ("lint", "test"):
        commands = makefile.commands(target).splitlines()
        assert ".venv/bin/lint-imports" in commands, target
        assert ".venv/bin/pyright" in commands, target
    pyright = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pyright"]
    assert pyright["typeCheckingMode"] in ("standard", "strict")
    assert pyright["enableTypeIgnoreComments"] is False
    assert {"tecl_pipeline", "tecl_pipeline_tests"} <= set(pyright["include"])


def test_one_command_installs_exactly_the_hash_checked_lock(makefile):
    """R1/S6: `make test` (and `make install`) first installs everything from the lock with
    --require-hashes and --no-deps (nothing outside the lock, nothing unverified), then the
    project itself without dependencies; only Python and make are assumed."""
    assert "install" in makefile.reachable("test")
    install = makefile.commands("install")
    assert re.search(
        r"pip install [^\n]*--require-hashes[^\n]*--no-deps[^\n]*-r requirements/dev\.lock", install
    ) or re.search(
        r"pip install [^\n]*--no-deps[^\n]*--require-hashes[^\n]*-r requirements/dev\.lock", install
    ), install
    project_installs = [
        line for line in install.splitlines() if "pip install" in line and " -e ." in line
    ]
    assert project_installs and all("--no-deps" in line for line in project_installs)
    assert "-m venv" in install


def third_party_imports(root: Path) -> dict[str, list[str]]:
    """Top-level modules imported anywhere under `root` that are neither stdlib nor ours."""
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                    found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_every_package_the_tests_import_comes_from_the_lock(pins):
    """R1: every third-party module imported by the tests or the package is provided by a
    distribution pinned in requirements/dev.lock, so the one install command is enough on a
    fresh machine (a module installed here by hand would pass locally and fail there)."""
    locked = {pin.name for pin in pins}
    providers = packages_distributions()
    imports = third_party_imports(REPO / "tecl_pipeline_tests")
    imports.update(third_party_imports(REPO / "tecl_pipeline"))
    missing = {
        module: where[0]
        for module, where in imports.items()
        if not {normalize(d) for d in providers.get(module, [])} & locked
    }
    assert missing == {}
    assert {"pytest", "hypothesis", "moto", "dagster", "alpaca"} <= set(imports)


def test_ci_lints_the_infrastructure_code(makefile):
    """A7: the infrastructure is code in the repo, and `make test` lints it with cfn-lint
    (informational findings fail it too)."""
    template = REPO / "deploy" / "cloudformation.yaml"
    assert template.is_file() and "AWSTemplateFormatVersion" in template.read_text()
    lint = [line for line in makefile.commands("test").splitlines() if "cfn-lint" in line]
    assert lint, "make test runs no cfn-lint"
    assert any(
        "deploy/cloudformation.yaml" in line and "--include-checks I" in line for line in lint
    )


def test_ci_runs_the_static_security_scan(makefile):
    """S6/R6: `make test` runs the whole pytest suite but the tests of the running stack,
    which CI runs with `make test-stack` after `make stack` (nothing else deselected); and the
    suite holds the bandit scan of the package, which fails on any medium or high finding."""
    pytest_lines = [line for line in makefile.commands("test").splitlines() if "pytest" in line]
    assert pytest_lines
    for line in pytest_lines:
        arguments = f" {line.split('pytest', 1)[1]} "
        for deselect in (" -k", " -m ", "--ignore", "--deselect"):
            assert deselect not in arguments, line
    options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["testpaths"] == ["tecl_pipeline_tests"]
    addopts = options.get("addopts", "").replace("-m 'not stack'", "")
    for deselect in ("-k", "-m ", "--ignore", "--deselect"):
        assert deselect not in addopts
    stack_tests = makefile.commands("test-stack")
    assert "pytest -m stack" in stack_tests
    ci_steps = (REPO / ".ci" / "run").read_text()
    assert "make stack" in ci_steps and "make test-stack" in ci_steps
    scan = (REPO / "tecl_pipeline_tests" / "deploy" / "test_security_scan.py").read_text()
    tree = ast.parse(scan)
    [test] = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name == "test_bandit_finds_no_medium_or_high_issue"
    ]
    assert not test.decorator_list, "the bandit test must not be skipped or marked"
    assert '"-r", "tecl_pipeline"' in scan and '"-ll"' in scan


def test_ci_runs_a_vulnerability_scan_of_the_locked_set(makefile, tmp_path):
    """C7/S6/R6: CI runs the vulnerability scan of the pinned set (pip-audit on
    requirements/dev.lock, through deploy/audit.py), and a known vulnerability fails it even
    with the flag that lets an unreachable vulnerability database through."""
    ci_steps = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    audit_step = next((line for line in ci_steps if line.startswith("make audit")), None)
    assert audit_step is not None, ci_steps
    commands = makefile.commands("audit")
    assert "deploy/audit.py" in commands and "requirements/dev.lock" in commands
    assert "$(AUDIT_FLAGS)" in commands

    spec = importlib.util.spec_from_file_location("deploy_audit", REPO / "deploy" / "audit.py")
    assert spec is not None and spec.loader is not None
    audit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(audit)
    flags = audit_step.partition("AUDIT_FLAGS=")[2].split()
    vulnerable = {
        "dependencies": [
            {
                "name": "urllib3",
                "version": "1.0",
                "vulns": [{"id": "PYSEC-0000-1", "fix_versions": ["2.0"], "aliases": []}],
            }
        ]
    }
    script = tmp_path / "pip-audit"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        "out = sys.argv[sys.argv.index('--output') + 1]\n"
        f"open(out, 'w').write({json.dumps(vulnerable)!r})\nsys.exit(1)\n"
    )
    script.chmod(0o755)
    assert audit.main(["--pip-audit", str(script), *flags]) == 1


def test_the_modules_make_test_starts_first_exist():
    """`make test` starts its minutes-long modules first (tecl_pipeline_tests/scheduling.py);
    one moved or renamed would silently be picked up last and hold the whole suite up."""
    from tecl_pipeline_tests.scheduling import SLOWEST_MODULES

    for module in SLOWEST_MODULES:
        assert (REPO / module).is_file(), module
