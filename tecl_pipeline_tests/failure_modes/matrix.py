"""The failure-mode matrix: docs/failure-modes.md is the project's list of every failure
mode under a stable ID (the audit's IDs in ../shared/FAILURE_MODES.md, and P1, P2, ... for
those the project found later); matrix.yaml (next to this file) maps each ID to the pytest
node ids (`path::test_name` or `path::TestClass::test_name`, without a `[param]` suffix) of
the tests that inject that fault and assert its promise.

Used by test_matrix.py (which fails on an ID without tests, an unknown ID, a test that does
not exist, or a document that lost an ID of the shared list), report.py
(`make failure-report`) and failure_doc.py (`make failure-docs`).
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MATRIX_FILE = Path(__file__).with_name("matrix.yaml")
FAILURE_DOC = REPO / "docs" / "failure-modes.md"
SHARED_DIR_VAR = "TECL_SHARED_DIR"
ID_PATTERN = re.compile(r"[TCBADSXRP][0-9]+")
# The shared list never uses P: those IDs are the project's own.
PROJECT_PREFIX = "P"


def shared_list_file() -> Path:
    """The audit's FAILURE_MODES.md in the shared folder beside the repo; TECL_SHARED_DIR
    overrides the folder (as TECL_SHARED_DATA does for the market data)."""
    override = os.environ.get(SHARED_DIR_VAR)
    return (Path(override) if override else REPO.parent / "shared") / "FAILURE_MODES.md"


@dataclass(frozen=True)
class FailureMode:
    id: str
    name: str
    promise: str


def parse_failure_modes(text: str) -> dict[str, FailureMode]:
    """Every row of every markdown table whose first header cell is "ID", in order.
    Raises ValueError on a row whose ID is malformed or repeated."""
    modes: dict[str, FailureMode] = {}
    in_table = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if cells[0] == "ID":
            in_table = True
            continue
        if not in_table or set(cells[0]) <= set("-: "):
            continue
        if not ID_PATTERN.fullmatch(cells[0]):
            raise ValueError(f"line {number}: {cells[0]!r} is not a failure-mode ID")
        if cells[0] in modes:
            raise ValueError(f"line {number}: ID {cells[0]} appears twice")
        name = cells[1] if len(cells) > 1 else ""
        promise = cells[2] if len(cells) > 2 else ""
        modes[cells[0]] = FailureMode(cells[0], name, promise)
    return modes


def load_failure_modes(path: Path = FAILURE_DOC) -> dict[str, FailureMode]:
    """The project's failure modes, in the document's order."""
    return parse_failure_modes(path.read_text())


def shared_list_problems(
    shared: dict[str, FailureMode], documented: dict[str, FailureMode]
) -> list[str]:
    """How the project's list strays from the shared one: an ID of the shared list it lacks,
    an ID outside the P range that the shared list does not have, or a P ID in the shared
    list (those are the project's own)."""
    problems = [
        f"{i}: in the shared list, not in {FAILURE_DOC.name}" for i in shared if i not in documented
    ]
    problems += [
        f"{i}: not in the shared list, so it needs a {PROJECT_PREFIX} ID"
        for i in documented
        if not i.startswith(PROJECT_PREFIX) and i not in shared
    ]
    problems += [
        f"{i}: the shared list uses a {PROJECT_PREFIX} ID, which are the project's own"
        for i in shared
        if i.startswith(PROJECT_PREFIX)
    ]
    return problems


def load_matrix(path: Path = MATRIX_FILE) -> dict[str, object]:
    """matrix.yaml as written: ID -> list of node ids (not validated here)."""
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path.name} must map failure-mode IDs to lists of tests")
    return {str(key): value for key, value in loaded.items()}


@cache
def _test_names(path: Path) -> frozenset[str]:
    """ "name" for module-level test functions, "Class::name" for test methods."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    return frozenset(names)


def node_problem(node: str) -> str | None:
    """Why `node` does not name an existing test, or None when it does."""
    if not isinstance(node, str):
        return f"{node!r} is not a string"
    if "[" in node:
        return "has a [param] suffix; name the test function itself"
    path_part, sep, name = node.partition("::")
    if not sep or not name:
        return "is not of the form path::test_name"
    path = REPO / path_part
    if not path_part.endswith(".py") or not path.is_file():
        return f"file {path_part} does not exist"
    parts = name.split("::")
    if len(parts) > 2 or not parts[-1].startswith("test"):
        return "is not path::test_name or path::TestClass::test_name"
    if len(parts) == 2 and not parts[0].startswith("Test"):
        return f"class {parts[0]} is not a Test* class"
    try:
        names = _test_names(path.resolve())
    except SyntaxError as exc:
        return f"{path_part} does not parse: {exc}"
    if name not in names:
        return f"{path_part} has no test {name}"
    return None
