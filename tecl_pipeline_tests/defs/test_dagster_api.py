"""The product uses Dagster's public, current API: no private `dagster._...` module, and the
assets say what they run on with `kinds` (compute_kind is deprecated since Dagster 1.10)."""

import ast
from pathlib import Path

from tecl_pipeline.definitions import defs

PACKAGE = Path(__file__).resolve().parents[2] / "tecl_pipeline"
# What each asset works with, as the UI's kind tags show it: the broker steps speak Alpaca's
# API (the demo and paper simulators too), the history table is SQLite.
KINDS = {
    "market_data": {"pandas"},
    "indicators": {"pandas"},
    "signal": {"python"},
    "target_allocation": {"python", "alpaca"},
    "executed_orders": {"python", "alpaca"},
    "post_trade_positions": {"python", "alpaca"},
    "signal_history_table": {"pandas", "sqlite"},
    "backtest": {"pandas"},
    "live_performance": {"pandas"},
}


def _private_dagster_imports(source: str) -> list[int]:
    """The lines of `source` that import a private Dagster module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        # "dagster._core", and "from dagster import _check" too.
        if any(m.startswith("dagster._") for m in modules):
            found.append(node.lineno)
    return found


# The one module allowed, and why: a run launcher's health check (RunLauncher,
# CheckRunHealthResult, WorkerStatus) and the code server's gRPC client are Dagster's
# plug-in interface for instances, which it has only in private modules (its own launchers
# and those of its integration libraries import them the same way). Its tests run it
# against a real code server, so a Dagster upgrade that moves them fails there.
PLUG_INS = {"tecl_pipeline/instance/run_launcher.py"}


def test_no_module_imports_a_private_dagster_module():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if str(path.relative_to(PACKAGE.parent)) not in PLUG_INS
        for line in _private_dagster_imports(path.read_text())
    ]
    assert offenders == []
    assert all((PACKAGE.parent / plug_in).is_file() for plug_in in PLUG_INS)


def test_the_scan_sees_every_spelling_of_a_private_import():
    """So that the empty list above means something."""
    source = (
        "import dagster._core.errors\n"
        "from dagster._check import CheckError\n"
        "from dagster import _check\n"
        "from dagster import DagsterError\n"
        "import dagster_shared.check\n"
        "def later() -> None:\n"
        "    from dagster._utils.error import SerializableErrorInfo\n"
    )
    assert _private_dagster_imports(source) == [1, 2, 3, 7]


def test_every_asset_names_its_kinds():
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    assert {name: set(spec.kinds) for name, spec in specs.items()} == KINDS
