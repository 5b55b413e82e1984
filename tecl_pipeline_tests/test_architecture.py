"""The pure core stays pure: no Dagster, no network or AWS clients, no module-level state."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tecl_pipeline"
PURE_CORE = tuple(
    f"core.{path.stem}" for path in sorted((PACKAGE / "core").glob("*.py")) if path.stem != "__init__"
) + ("trading.reconcile",)
FORBIDDEN = ("dagster", "alpaca", "boto3", "botocore", "requests", "urllib3", "http.client")


@pytest.mark.parametrize("module", PURE_CORE)
def test_pure_core_imports_no_framework_or_io_client(module):
    """Importing a core module alone pulls in none of the I/O or orchestration libraries."""
    code = (
        f"import sys, tecl_pipeline.{module}; "
        f"print(','.join(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "", f"tecl_pipeline.{module} imports {done.stdout.strip()}"


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
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_module_level_mutable_containers_in_the_core():
    """T10: nothing a run could mutate survives into the next run in the same process."""
    offenders = [
        where for module in PURE_CORE for where in _module_level_mutables(PACKAGE / f"{module.replace('.', '/')}.py")
    ]
    assert offenders == []
