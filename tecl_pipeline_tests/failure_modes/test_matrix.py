"""Every failure mode in docs/failure-modes.md has tests, and every test the matrix names
exists.

matrix.yaml maps each ID of the document to the pytest node ids of the tests that inject
that fault and assert the promise. A new failure mode without a test, a test renamed or
deleted under the matrix, or an ID the document no longer has fails here, naming the ID and
the test.
"""

from __future__ import annotations

import pytest

from tecl_pipeline_tests.failure_modes.matrix import (
    FAILURE_DOC,
    MATRIX_FILE,
    FailureMode,
    load_failure_modes,
    load_matrix,
    node_problem,
    parse_failure_modes,
)


@pytest.fixture(scope="module")
def modes() -> dict[str, FailureMode]:
    found = load_failure_modes()
    assert found, f"no failure-mode table rows found in {FAILURE_DOC}"
    return found


@pytest.fixture(scope="module")
def matrix() -> dict[str, object]:
    return load_matrix()


def test_every_failure_mode_has_tests(modes, matrix):
    """Each ID of docs/failure-modes.md has a non-empty list of tests in matrix.yaml."""
    problems = []
    for mode in modes.values():
        entry = matrix.get(mode.id)
        if mode.id not in matrix:
            problems.append(f"{mode.id} ({mode.name}): no entry in {MATRIX_FILE.name}")
        elif not isinstance(entry, list) or not entry:
            problems.append(f"{mode.id} ({mode.name}): the entry is not a non-empty list of tests")
    assert problems == [], "\n".join(problems)


def test_matrix_names_only_failure_modes_the_document_has(modes, matrix):
    unknown = sorted(set(matrix) - set(modes))
    assert unknown == [], f"IDs in {MATRIX_FILE.name} but not in {FAILURE_DOC.name}: {unknown}"


def test_every_test_in_the_matrix_exists(matrix):
    """Each node id resolves to a test function in an existing file (read with ast, not
    collected): `path::test_name` or `path::TestClass::test_name`."""
    problems = []
    for failure_id, nodes in matrix.items():
        for node in nodes if isinstance(nodes, list) else []:
            problem = node_problem(node)
            if problem is not None:
                problems.append(f"{failure_id}: {node}: {problem}")
    assert problems == [], "\n".join(problems)


def test_no_test_is_listed_twice_for_one_failure_mode(matrix):
    repeated = [
        f"{failure_id}: {node}"
        for failure_id, nodes in matrix.items()
        if isinstance(nodes, list)
        for index, node in enumerate(nodes)
        if node in nodes[:index]
    ]
    assert repeated == []


# -- the checks themselves catch what they must ---------------------------------------------


SAMPLE = """\
## T: trading
| ID | failure mode | promise |
| --- | --- | --- |
| T1 | stale data | no orders |
| T2 | wrong time | refuses |

Some prose with | a pipe | that is not a table row.

## R: the suite
| ID | finding | promise |
|---|---|---|
| R1 | missing deps | one command |
"""


def test_parser_reads_every_table_row_and_only_those():
    parsed = parse_failure_modes(SAMPLE)
    assert list(parsed) == ["T1", "T2", "R1"]
    assert (parsed["T2"].name, parsed["R1"].promise) == ("wrong time", "one command")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SAMPLE.replace("| T2 |", "| T1 |"), "T1 appears twice"),
        (SAMPLE.replace("| T2 |", "| TX |"), "'TX' is not a failure-mode ID"),
    ],
)
def test_parser_refuses_a_malformed_or_repeated_id(text, message):
    with pytest.raises(ValueError, match=message):
        parse_failure_modes(text)


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ("tecl_pipeline_tests/no_such_file.py::test_x", "does not exist"),
        ("tecl_pipeline_tests/failure_modes/test_matrix.py::test_no_such_test", "has no test"),
        (
            "tecl_pipeline_tests/failure_modes/test_matrix.py::test_every_test_in_the_matrix_exists[x]",
            "[param]",
        ),
        ("tecl_pipeline_tests/failure_modes/test_matrix.py", "path::test_name"),
        ("tecl_pipeline_tests/failure_modes/test_matrix.py::Helper::test_x", "not a Test* class"),
    ],
)
def test_a_missing_or_malformed_node_id_is_named(node, problem):
    message = node_problem(node)
    assert message is not None and problem in message


def test_an_existing_test_resolves():
    assert (
        node_problem(
            "tecl_pipeline_tests/failure_modes/test_matrix.py::test_an_existing_test_resolves"
        )
        is None
    )
