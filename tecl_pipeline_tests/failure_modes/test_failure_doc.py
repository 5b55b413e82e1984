"""docs/failure-modes.md describes every failure-mode ID that the matrix maps or the code
cites, lists for each exactly the tests matrix.yaml maps it to, and keeps the shared list's
IDs.

A test renamed in the matrix without `make failure-docs`, a new ID in the matrix or in a
comment without a row in the document, or a shared ID dropped from it fails here, naming the
ID.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tecl_pipeline_tests.failure_modes.failure_doc import (
    TESTED_BY_HEADING,
    cited_ids,
    documented_tests,
    render,
)
from tecl_pipeline_tests.failure_modes.matrix import (
    FAILURE_DOC,
    MATRIX_FILE,
    REPO,
    SHARED_DIR_VAR,
    FailureMode,
    load_failure_modes,
    load_matrix,
    parse_failure_modes,
    shared_list_file,
    shared_list_problems,
)

# The product and its tooling; the tests are left out because some hold made-up IDs on
# purpose (samples for the checks themselves).
SOURCE_TREES = ("tecl_pipeline", "deploy", "bench")


@pytest.fixture(scope="module")
def doc_text() -> str:
    return FAILURE_DOC.read_text()


@pytest.fixture(scope="module")
def documented(doc_text: str) -> dict[str, FailureMode]:
    found = parse_failure_modes(doc_text)
    assert found, f"no failure-mode table rows in {FAILURE_DOC}"
    return found


@pytest.fixture(scope="module")
def matrix() -> dict[str, object]:
    return load_matrix()


def test_every_id_in_the_matrix_has_a_row_in_the_document(documented, matrix):
    missing = [i for i in matrix if i not in documented]
    assert missing == [], f"IDs in {MATRIX_FILE.name} without a row in {FAILURE_DOC.name}"


def test_the_documents_test_lists_are_the_matrix(doc_text, matrix):
    listed = documented_tests(doc_text)
    differing = [
        f"{i}: the document lacks {[n for n in nodes if n not in mine]}, "
        f"has beyond the matrix {[n for n in mine if n not in nodes]} (or another order)"
        for i, nodes in matrix.items()
        if (mine := listed.get(i, [])) != nodes
    ] + [f"{i}: listed in the document, not in the matrix" for i in listed if i not in matrix]
    assert differing == [], "run `make failure-docs`:\n" + "\n".join(differing)
    assert render(doc_text, matrix) == doc_text, "run `make failure-docs` (layout differs)"


def test_every_id_the_code_cites_has_a_row_in_the_document(documented):
    undescribed = sorted(
        f"{path.relative_to(REPO)}: {found}"
        for tree in SOURCE_TREES
        for path in (REPO / tree).rglob("*.py")
        for found in cited_ids(path.read_text())
        if found not in documented
    )
    assert undescribed == [], f"cited but not described in {FAILURE_DOC.name}"


def test_the_document_keeps_every_id_of_the_shared_list(documented):
    """The audit's list beside the repo is where most IDs came from; an ID of it the project
    drops or reuses with another meaning is a failure mode no longer covered."""
    path = shared_list_file()
    if not path.is_file():
        pytest.skip(f"FAILURE_MODES.md not found at {path} (set {SHARED_DIR_VAR})")
    assert shared_list_problems(parse_failure_modes(path.read_text()), documented) == []


# -- the checks themselves catch what they must ---------------------------------------------


SAMPLE = f"""\
# Failure modes

| ID | what goes wrong | what the pipeline does |
| --- | --- | --- |
| T1 | stale data | no orders |
| P1 | a wrong exit status | the right one |

{TESTED_BY_HEADING}

"""


def test_a_rendered_document_lists_the_matrix_under_each_id():
    matrix: dict[str, object] = {"T1": ["a.py::test_x", "b.py::test_y"], "P1": ["c.py::test_z"]}
    rendered = render(SAMPLE, matrix)
    assert documented_tests(rendered) == matrix
    assert render(rendered, matrix) == rendered
    assert rendered.startswith(SAMPLE)


def test_a_changed_test_list_or_an_undescribed_id_is_caught():
    rendered = render(SAMPLE, {"T1": ["a.py::test_x"], "P1": ["c.py::test_z"]})
    renamed = {"T1": ["a.py::test_renamed"], "P1": ["c.py::test_z"]}
    assert documented_tests(rendered) != renamed
    assert render(rendered, renamed) != rendered
    with pytest.raises(ValueError, match="T2"):
        render(SAMPLE, {"T1": ["a.py::test_x"], "T2": ["a.py::test_w"]})
    with pytest.raises(ValueError, match=TESTED_BY_HEADING):
        render(SAMPLE.replace(TESTED_BY_HEADING, "## Tests"), {})


def test_citations_are_read_from_comments_and_strings_only():
    source = (
        '"""Refuses stale bars (T1, X2)."""\n'
        "T5 = 1  # the journal is spooled (D1/D7)\n"
        'URL = "https://hooks.example.com/services/T0/B0/X"  # nosec B310\n'
    )
    assert cited_ids(source) == {"T1", "X2", "D1", "D7"}


def test_the_shared_list_check_names_a_dropped_a_foreign_and_a_misplaced_id():
    def modes(*ids: str) -> dict[str, FailureMode]:
        return {i: FailureMode(i, "", "") for i in ids}

    assert shared_list_problems(modes("T1", "T2"), modes("T1", "T2", "P1")) == []
    problems = shared_list_problems(modes("T1", "T2", "P3"), modes("T1", "C9", "P1"))
    assert [p.split(":")[0] for p in problems] == ["T2", "P3", "C9", "P3"]


def test_the_project_list_loads_from_the_document(tmp_path: Path):
    doc = tmp_path / "failure-modes.md"
    doc.write_text(SAMPLE)
    assert list(load_failure_modes(doc)) == ["T1", "P1"]
