"""`make failure-report`: run every test of the failure-mode matrix once, then print the
table ID | failure mode | result | tests, and exit non-zero unless every failure mode passes.

One pytest session runs all the matrix's tests (parametrized ones with every parameter);
a plugin records each test's outcome. A failure mode passes when every one of its tests
passed; skipped, xfailed, missing or failing tests are shown and make it fail.

    python -m tecl_pipeline_tests.failure_modes.report [ID ...]
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Sequence

import pytest

from tecl_pipeline_tests.failure_modes.matrix import (
    FAILURE_DOC,
    MATRIX_FILE,
    REPO,
    load_failure_modes,
    load_matrix,
    node_problem,
)

# Worst first: a test's outcome is the worst of its phases and of its parameters.
SEVERITY = ("error", "failed", "xpassed", "missing", "not run", "skipped", "xfailed", "passed")
NAME_WIDTH = 44


class OutcomeCollector:
    """A pytest plugin: the outcome of every test (setup, call and teardown combined)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def _record(self, nodeid: str, outcome: str) -> None:
        known = self.outcomes.get(nodeid)
        if known is None or SEVERITY.index(outcome) < SEVERITY.index(known):
            self.outcomes[nodeid] = outcome

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        xfail = hasattr(report, "wasxfail")
        if report.failed:
            self._record(report.nodeid, "failed" if report.when == "call" else "error")
        elif report.skipped:
            self._record(report.nodeid, "xfailed" if xfail else "skipped")
        elif report.when == "call":
            self._record(report.nodeid, "xpassed" if xfail else "passed")

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._record(report.nodeid, "error")


def worst(outcomes: Sequence[str]) -> str:
    return min(outcomes, key=SEVERITY.index)


def node_outcome(node: str, outcomes: dict[str, str]) -> str:
    """A matrix entry's outcome: all its parameters', or its file's collection error."""
    if node_problem(node) is not None:
        return "missing"
    mine = [o for nodeid, o in outcomes.items() if nodeid.split("[", 1)[0] == node]
    if not mine:
        path = node.split("::", 1)[0]
        mine = [o for nodeid, o in outcomes.items() if nodeid == path]
    return worst(mine) if mine else "not run"


def short(node: str) -> str:
    return node.removeprefix("tecl_pipeline_tests/")


def table(rows: list[tuple[str, str, str, list[str]]]) -> str:
    """ID | failure mode | result | tests, one test per line, the name wrapped."""
    id_width = max(len("ID"), *(len(r[0]) for r in rows))
    lines = [
        f"{'ID':<{id_width}} | {'failure mode':<{NAME_WIDTH}} | result | tests",
        f"{'-' * id_width}-+-{'-' * NAME_WIDTH}-+--------+{'-' * 60}",
    ]
    for failure_id, name, result, tests in rows:
        wrapped = textwrap.wrap(name, NAME_WIDTH) or [""]
        for index in range(max(len(wrapped), len(tests))):
            first = index == 0
            lines.append(
                f"{failure_id if first else '':<{id_width}} | "
                f"{wrapped[index] if index < len(wrapped) else '':<{NAME_WIDTH}} | "
                f"{result if first else '':<6} | "
                f"{tests[index] if index < len(tests) else ''}".rstrip()
            )
        lines.append(f"{'':<{id_width}} | {'':<{NAME_WIDTH}} |        |")
    return "\n".join(lines[:-1])


def main(argv: Sequence[str] | None = None) -> int:
    wanted = list(sys.argv[1:] if argv is None else argv)
    os.chdir(REPO)
    modes = load_failure_modes()
    matrix = load_matrix()
    unknown = [w for w in wanted if w not in modes]
    if unknown:
        print(f"not in {FAILURE_DOC.name}: {', '.join(unknown)}", file=sys.stderr)
        return 2
    chosen = [modes[w] for w in wanted] if wanted else list(modes.values())
    entries = {
        mode.id: [str(n) for n in listed] if isinstance(listed := matrix.get(mode.id), list) else []
        for mode in chosen
    }
    nodes = list(dict.fromkeys(n for ns in entries.values() for n in ns))
    runnable = [n for n in nodes if node_problem(n) is None]

    collector = OutcomeCollector()
    if runnable:
        pytest.main(
            [
                "-p",
                "no:cacheprovider",
                "-q",
                "--disable-warnings",
                "--continue-on-collection-errors",
                *runnable,
            ],
            plugins=[collector],
        )

    rows = []
    not_passing = []
    for mode in chosen:
        outcomes = [(node, node_outcome(node, collector.outcomes)) for node in entries[mode.id]]
        passed = bool(outcomes) and all(outcome == "passed" for _, outcome in outcomes)
        if not passed:
            not_passing.append(mode.id)
        tests = [f"{short(node)} ({outcome})" for node, outcome in outcomes]
        rows.append(
            (
                mode.id,
                mode.name,
                "pass" if passed else "FAIL",
                tests or [f"(no tests in {MATRIX_FILE.name})"],
            )
        )

    print()
    print(table(rows))
    print()
    print(f"{len(chosen) - len(not_passing)} of {len(chosen)} failure modes pass.")
    if not_passing:
        print(f"Not passing: {', '.join(not_passing)}")
    return 1 if not_passing else 0


if __name__ == "__main__":
    sys.exit(main())
