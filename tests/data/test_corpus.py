"""The knowledge-base corpus: validated like the pairs, and checked against them."""

from __future__ import annotations

import json
import logging

import pytest

from embedtune import config
from embedtune.data import corpus, records
from embedtune.errors import StageError
from tests.tiny import toy_corpus, toy_rows, write_csv

COLS = config.CorpusColumns(id="global_chunk_id", text="text", document_id="case_name")


def _passages(tmp_path, rows, name="kb.csv"):
    path = write_csv(tmp_path / name, rows)
    return corpus.validate(records.read_records(path), COLS, str(path)), path


def test_a_clean_corpus_keeps_every_passage(tmp_path):
    kb = toy_corpus(toy_rows(4, 2), extra=6)
    passages, _ = _passages(tmp_path, kb)
    assert [passage["id"] for passage in passages] == [str(r["global_chunk_id"]) for r in kb]
    assert passages[0] == {"id": "0", "text": kb[0]["text"], "document_id": "Case 0"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text": "  "}, "row 3, column 'text': empty or whitespace-only text"),
        ({"global_chunk_id": ""}, "row 3, column 'global_chunk_id': empty"),
        ({"global_chunk_id": "0"}, "row 3, column 'text': passage id '0' has a different text"),
    ],
)
def test_bad_rows_name_file_row_and_column(tmp_path, change, message):
    kb = toy_corpus(toy_rows(4, 2), extra=2)
    kb[2].update(change)
    with pytest.raises(StageError, match="kb.csv: " + message):
        _passages(tmp_path, kb)


def test_none_and_non_string_cells_in_jsonl(tmp_path):
    path = tmp_path / "kb.jsonl"
    path.write_text(
        json.dumps({"global_chunk_id": 1, "text": None, "case_name": "c"})
        + "\n"
        + json.dumps({"global_chunk_id": 2, "text": 7, "case_name": "c"})
        + "\n"
    )
    with pytest.raises(StageError) as err:
        corpus.validate(records.read_records(path), COLS, str(path))
    assert "line 1, column 'text': missing value (None/NaN)" in str(err.value)
    assert "line 2, column 'text': expected text, got int 7" in str(err.value)


def test_exact_repeats_are_dropped_and_counted(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="embedtune")
    kb = toy_corpus(toy_rows(3, 2), extra=2)
    passages, path = _passages(tmp_path, [*kb, kb[1]])
    assert len(passages) == len(kb)
    assert caplog.messages == [f"dropped 1 repeated passage row(s) from {path}"]


def test_a_missing_text_column_is_named(tmp_path):
    kb = [{"global_chunk_id": 1, "body": "x", "case_name": "c"}]
    with pytest.raises(StageError, match="column 'text' \\(mapped to text\\) not found"):
        _passages(tmp_path, kb)


def _pairs(rows):
    return [
        {
            "anchor": r["question"],
            "positive": r["text"],
            "chunk_id": str(r["global_chunk_id"]),
            "document_id": r["case_name"],
        }
        for r in rows
    ]


def test_join_accepts_pairs_whose_chunks_are_in_the_corpus(tmp_path):
    rows = toy_rows(4, 2)
    passages, _ = _passages(tmp_path, toy_corpus(rows, extra=8))
    pairs, joined = corpus.join(_pairs(rows), {}, passages, False, "pairs.csv", "kb.csv")
    assert pairs == _pairs(rows) and joined == passages
    assert corpus.summary(pairs, joined) == {"passages": 12, "labelled": 4, "unlabelled": 8}


def test_a_labelled_chunk_missing_from_the_corpus_names_both_files(tmp_path):
    rows = toy_rows(4, 2)
    passages, _ = _passages(tmp_path, toy_corpus(rows, extra=2)[1:])  # chunk 0 left out
    where = {"0": "row 1"}
    with pytest.raises(StageError, match="pairs.csv: row 1: chunk id '0' is not in the corpus kb"):
        corpus.join(_pairs(rows), where, passages, False, "pairs.csv", "kb.csv")


@pytest.mark.parametrize(
    ("row", "column", "value", "message"),
    [
        (3, "text", "an edited version", "chunk id '3' has a different text in the corpus kb"),
        (1, "case_name", "Some Other Case", "'Case 1', but the corpus kb.csv puts it in 'Some"),
    ],
)
def test_a_labelled_chunk_the_corpus_contradicts_is_an_error(tmp_path, row, column, value, message):
    """Another text, or another document, for a chunk the pairs already placed."""
    rows = toy_rows(4, 2)
    kb = toy_corpus(rows, extra=2)
    kb[row][column] = value
    passages, _ = _passages(tmp_path, kb)
    with pytest.raises(StageError, match=message):
        corpus.join(_pairs(rows), {"3": "row 7"}, passages, False, "pairs.csv", "kb.csv")


def test_pairs_without_chunk_ids_are_matched_by_text(tmp_path):
    rows = toy_rows(4, 2)
    passages, _ = _passages(tmp_path, toy_corpus(rows, extra=3))
    unmatched = [dict(pair, chunk_id=records.text_id(pair["positive"])) for pair in _pairs(rows)]
    pairs, _ = corpus.join(unmatched, {}, passages, True, "pairs.csv", "kb.csv")
    assert [pair["chunk_id"] for pair in pairs] == [pair["chunk_id"] for pair in _pairs(rows)]
    unmatched[0]["positive"] = "a passage the corpus does not hold"
    with pytest.raises(StageError, match="passage text not found in the corpus kb.csv"):
        corpus.join(unmatched, {}, passages, True, "pairs.csv", "kb.csv")


def test_without_a_knowledge_base_the_corpus_is_the_labelled_chunks():
    pairs = _pairs(toy_rows(5, 3))
    passages = corpus.from_pairs(pairs)
    assert [passage["id"] for passage in passages] == ["0", "1", "2", "3", "4"]
    assert corpus.summary(pairs, passages)["unlabelled"] == 0
