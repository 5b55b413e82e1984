"""`make failure-docs`: rewrite the "Tested by" section of docs/failure-modes.md from
matrix.yaml, so the document lists for each ID exactly the tests the matrix maps it to.

The descriptions above that section are written by hand; the test lists are not, because the
matrix is their one home (test_matrix.py checks it, `make failure-report` runs it) and a
test renamed there would otherwise have to be renamed here by hand too. test_failure_doc.py
fails when the document and the matrix disagree and says to run this.

    python -m tecl_pipeline_tests.failure_modes.failure_doc
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Mapping
from pathlib import Path

from tecl_pipeline_tests.failure_modes.matrix import (
    FAILURE_DOC,
    MATRIX_FILE,
    REPO,
    load_matrix,
    parse_failure_modes,
)

TESTED_BY_HEADING = "## Tested by"
# A citation such as "(X2, T4)" or "D4/X2"; no ID has a leading zero, which keeps "T0/B0" in
# a sample webhook URL out.
CITATION = re.compile(r"\b[TCBADSXRP][1-9][0-9]?\b")
ID_HEADING = re.compile(r"### ([A-Z][0-9]+)$")
TEST_LINE = re.compile(r"- `([^`]+)`$")
GENERATED_NOTE = (
    f"<!-- Generated from {MATRIX_FILE.relative_to(REPO)} by `make failure-docs`;"
    " edit the matrix, then run it. -->"
)


def tested_by(doc_text: str, matrix: Mapping[str, object]) -> str:
    """The section after TESTED_BY_HEADING: one heading per ID in the document's order, then
    its tests. Raises ValueError for an ID of the matrix the document does not describe."""
    modes = parse_failure_modes(doc_text)
    undocumented = [i for i in matrix if i not in modes]
    if undocumented:
        raise ValueError(
            f"IDs in {MATRIX_FILE.name} without a row in {FAILURE_DOC.name}: "
            + ", ".join(undocumented)
        )
    blocks = [GENERATED_NOTE]
    for mode in modes.values():
        nodes = matrix.get(mode.id)
        tests = [f"- `{node}`" for node in nodes] if isinstance(nodes, list) else []
        blocks.append("\n".join([f"### {mode.id}", "", *(tests or ["- (none)"])]))
    return "\n\n".join(blocks) + "\n"


def render(doc_text: str, matrix: Mapping[str, object]) -> str:
    """The document with its "Tested by" section replaced by the matrix's test lists."""
    head, found, _ = doc_text.partition(f"\n{TESTED_BY_HEADING}\n")
    if not found:
        raise ValueError(f"{FAILURE_DOC.name} has no line {TESTED_BY_HEADING!r}")
    return f"{head}\n{TESTED_BY_HEADING}\n\n{tested_by(head, matrix)}"


def documented_tests(doc_text: str) -> dict[str, list[str]]:
    """The "Tested by" section as written: ID -> the node ids listed under its heading."""
    _, _, section = doc_text.partition(f"\n{TESTED_BY_HEADING}\n")
    listed: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in section.splitlines():
        if heading := ID_HEADING.match(line):
            current = listed.setdefault(heading.group(1), [])
        elif (test := TEST_LINE.match(line)) and current is not None:
            current.append(test.group(1))
    return listed


def cited_ids(source: str) -> set[str]:
    """The failure-mode IDs a Python source cites in its comments and strings (docstrings
    included); code is not read, so a name like `T1` in an expression is no citation."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {
        found
        for token in tokens
        if token.type in (tokenize.COMMENT, tokenize.STRING)
        for found in CITATION.findall(token.string)
    }


def main(path: Path = FAILURE_DOC) -> int:
    text = path.read_text()
    updated = render(text, load_matrix())
    if updated != text:
        path.write_text(updated)
        print(f"{path.relative_to(REPO)}: Tested by section rewritten from {MATRIX_FILE.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
