"""embedtune.data.records: the cell checks every row-reading stage shares, and the warning
about one passage text under several ids."""

from __future__ import annotations

import logging

import pytest

from embedtune.data import records
from embedtune.errors import StageError

CELLS: records.Cells = {"question": ("q", "text"), "chunk": ("id", "id")}


def test_clean_rows_are_yielded_stripped_and_normalised():
    rows = [("row 1", {"q": "  a question? ", "id": 7, "extra": None})]
    problems: list[str] = []
    out = list(records.checked_rows(rows, CELLS, "f.csv", problems))
    assert problems == []
    assert out == [("row 1", rows[0][1], {"question": "a question?", "chunk": "7"})]


def test_every_bad_cell_is_named_and_its_row_left_out():
    rows = [
        ("row 1", {"q": " ", "id": True}),
        ("row 2", {"q": "fine", "id": "c2"}),
        ("row 3", {"id": 3.5}),
    ]
    problems: list[str] = []
    kept = [where for where, _, _ in records.checked_rows(rows, CELLS, "f.csv", problems)]
    assert kept == ["row 2"]
    assert problems == [
        "f.csv: row 1, column 'q': empty or whitespace-only text",
        "f.csv: row 1, column 'id': expected an id, got bool True",
        "f.csv: row 3, column 'q': missing value (None/NaN)",
        "f.csv: row 3, column 'id': expected text, got float 3.5",
    ]


def test_the_callers_problems_stay_in_row_order():
    """Lazy: a problem the caller finds in row 2 is listed between rows 1 and 3's."""
    rows = [(f"row {i}", {"q": "" if i != 2 else "ok", "id": i}) for i in (1, 2, 3)]
    problems: list[str] = []
    for where, _, cell in records.checked_rows(rows, CELLS, "f.csv", problems):
        problems.append(f"f.csv: {where}: caller's check of chunk {cell['chunk']}")
    assert [problem.split(":")[1].strip() for problem in problems] == [
        "row 1, column 'q'",
        "row 2",
        "row 3, column 'q'",
    ]


def test_cells_are_checked_in_the_order_given():
    rows = [("line 4", {"q": None, "id": None})]
    problems: list[str] = []
    id_first: records.Cells = {"chunk": ("id", "id"), "question": ("q", "text")}
    assert list(records.checked_rows(rows, id_first, "p.jsonl", problems)) == []
    assert [problem.split(", ")[1] for problem in problems] == [
        "column 'id': missing value (None/NaN)",
        "column 'q': missing value (None/NaN)",
    ]


def test_raise_problems_lists_twenty_and_counts_the_rest():
    records.raise_problems([])
    with pytest.raises(StageError) as err:
        records.raise_problems([f"problem {i}" for i in range(25)])
    lines = str(err.value).splitlines()
    assert lines[0] == "25 invalid row(s):" and lines[20] == "problem 19"
    assert lines[-1] == "... and 5 more"


def test_one_text_under_several_ids_is_a_warning_naming_the_key(caplog):
    id_text = {"a": ("same", "row 1"), "b": ("other", "row 2"), "c": ("same", "row 9")}
    records.warn_shared_texts(id_text, "kb.csv", "fetch.corpus.columns.id")
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.name == "embedtune.data.records"
    assert record.getMessage() == (
        "1 passage text(s) in kb.csv appear under more than one id (first at row 1 and row 9); "
        "each copy is a separate corpus entry. Set fetch.corpus.columns.id: null to identify "
        "passages by text."
    )
    caplog.clear()
    records.warn_shared_texts({"a": ("x", "row 1")}, "kb.csv", "k")
    assert caplog.records == []
