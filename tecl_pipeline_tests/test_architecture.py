"""The layers hold: the import contracts of pyproject.toml (run by `make lint`) cover every
folder and catch a violation; no module keeps state at module level."""

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tecl_pipeline"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# What the core never imports, directly or through another module of the package.
CORE_FORBIDDEN = (
    "dagster",
    "boto3",
    "botocore",
    "alpaca",
    "requests",
    "urllib3",
    "http",
    "sqlite3",
    "socket",
)


def _contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def test_the_core_contract_forbids_every_io_and_orchestration_library():
    forbidden = set(_contracts()["pure-core"]["forbidden_modules"])
    assert set(CORE_FORBIDDEN) <= forbidden, set(CORE_FORBIDDEN) - forbidden
    assert _contracts()["pure-core"]["source_modules"] == ["tecl_pipeline.core"]


def test_the_layers_contract_has_every_subpackage():
    """A new top-level folder or module joins a layer, or the contract would not see it."""
    layers = _contracts()["layers"]["layers"]
    named = {name.strip() for layer in layers for name in re.split(r"[|:]", layer)}
    present = {
        path.stem if path.is_file() else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert named == present


def _lint_imports(tree: Path, contract: str) -> subprocess.CompletedProcess[str]:
    # The copy comes first on the path, before the editable install of the real package.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--contract", contract, "pyproject.toml"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("contract", "module", "line"),
    [
        ("pure-core", "core/strategy.py", "import dagster"),
        ("pure-core", "core/indicators.py", "from tecl_pipeline.state import history_store"),
        ("layers", "trading/execution.py", "from tecl_pipeline.defs import resources"),
        ("layers", "simulator/engine.py", "from tecl_pipeline.adapters.alpaca import broker"),
        ("adapters-below-defs", "adapters/aws/s3_journal.py", "import tecl_pipeline.definitions"),
        ("app-on-top", "defs/assets.py", "from tecl_pipeline.app import cli"),
        ("dev-only-in-harness", "simulator/server.py", "import moto"),
    ],
)
def test_a_violation_breaks_its_contract(tmp_path, contract, module, line):
    """The contracts are not vacuous: one forbidden import in a copy of the package (direct,
    or through a module that does file I/O) breaks the contract that names it."""
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PACKAGE, tmp_path / "tecl_pipeline", ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert _lint_imports(tmp_path, contract).returncode == 0
    with (tmp_path / "tecl_pipeline" / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    done = _lint_imports(tmp_path, contract)
    assert done.returncode != 0
    assert "BROKEN" in done.stdout, done.stdout
    assert f"tecl_pipeline.{module.removesuffix('.py').replace('/', '.')}" in done.stdout


def _module_level_mutables(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.List | ast.Dict | ast.Set) or (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id in {"list", "dict", "set", "defaultdict"}
        ):
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_no_module_level_mutable_containers():
    """T10: nothing a run could mutate survives into the next run in the same process: no
    module of the package holds a list, dict or set at module level (constants are tuples,
    frozensets and read-only mappings)."""
    offenders = [
        where for path in sorted(PACKAGE.rglob("*.py")) for where in _module_level_mutables(path)
    ]
    assert offenders == []


def _readme_layout_folders() -> list[str]:
    """The folders of README's layout tree, as paths ("tecl_pipeline/defs/sensors")."""
    text = (PACKAGE.parent / "README.md").read_text()
    block = text.split("<!-- layout:", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    folders: list[str] = []
    parents: list[str] = []
    for line in block.splitlines():
        name = line.lstrip("│├└─ ").split()[0]
        depth = (len(line) - len(line.lstrip("│├└─ "))) // 4
        parents[depth:] = [name.rstrip("/")]
        folders.append("/".join(parents))
    return folders


def test_the_readme_layout_tree_is_the_folders():
    """README's layout is a tree with one line per folder: every folder that holds a tracked
    file (the package, the tests, the top-level folders) has its line, and no line names a
    folder that is not there."""
    repo = PACKAGE.parent
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {
        str(parent)
        for name in tracked
        for parent in Path(name).parents
        if str(parent) != "." and not any(part.startswith(".") for part in parent.parts)
    }
    listed = _readme_layout_folders()
    assert len(listed) == len(set(listed)), "a folder is listed twice"
    assert sorted(listed) == sorted(folders)
