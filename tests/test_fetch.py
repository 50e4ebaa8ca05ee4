"""fetch validates every row and names file, row and column for each problem."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

from embedtune import cli, config, io
from embedtune.data import records
from embedtune.errors import StageError
from stages import fetch
from tests.tiny import toy_rows, write_csv

COLS = config.Columns(
    anchor="question", positive="text", chunk_id="global_chunk_id", document_id="case_name"
)


def _validate(path):
    return fetch.validate_pairs(records.read_records(path), COLS, str(path))


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_reads_every_format_to_the_same_pairs(tmp_path, suffix):
    rows = toy_rows(5, 2)
    path = tmp_path / f"pairs.{suffix}"
    if suffix == "csv":
        write_csv(path, rows)
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pd.DataFrame(rows).to_parquet(path)
    pairs = _validate(path)
    assert len(pairs) == 10
    assert pairs[0] == {
        "anchor": rows[0]["question"],
        "positive": rows[0]["text"],
        "chunk_id": "0",
        "document_id": "Case 0",
    }


def _csv_with(tmp_path, row_index, **changes):
    rows = toy_rows(4, 2)
    rows[row_index].update(changes)
    return write_csv(tmp_path / "bad.csv", rows)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"question": ""}, "row 3, column 'question': empty or whitespace-only"),
        ({"text": "   \t"}, "row 3, column 'text': empty or whitespace-only"),
        ({"global_chunk_id": ""}, "row 3, column 'global_chunk_id': empty"),
        (
            {"text": "a different text for the same chunk id"},
            "row 4, column 'text': chunk id '1' has a different text than at row 3",
        ),
    ],
)
def test_csv_problems_name_file_row_and_column(tmp_path, changes, message):
    path = _csv_with(tmp_path, 2, **changes)
    with pytest.raises(StageError, match=message) as err:
        _validate(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "missing value"), (float("nan"), "missing value"), (42, "expected text, got int")],
)
def test_jsonl_none_nan_and_non_strings(tmp_path, value, message):
    rows = toy_rows(3, 2)
    rows[4]["question"] = value
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # NaN is written as NaN
    with pytest.raises(StageError, match=f"line 5, column 'question': {message}"):
        _validate(path)


def test_missing_mapped_column(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "text"} for r in toy_rows(2, 2)]
    path = write_csv(tmp_path / "x.csv", rows)
    with pytest.raises(StageError, match="column 'text' \\(mapped to positive\\) not found"):
        _validate(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.jsonl", '{"question": "a"\n', "line 1: malformed JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1: expected a JSON object"),
        ("broken.csv", 'question,text\n"unclosed,quote\n', "cannot parse file"),
        ("latin1.csv", None, "not UTF-8"),
        ("pairs.txt", "x", "unsupported file type"),
        ("empty.csv", "", "cannot parse file"),
    ],
)
def test_unreadable_or_malformed_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        path.write_bytes("question,text\ncaf\xe9,x\n".encode("latin-1"))
    else:
        path.write_text(content)
    with pytest.raises(StageError, match=message) as err:
        _validate(path)
    assert str(path) in str(err.value)


def test_exact_duplicates_are_dropped_and_counted(tmp_path, capsys):
    rows = toy_rows(3, 2)
    path = write_csv(tmp_path / "d.csv", rows + rows[:2])
    assert len(_validate(path)) == 6
    assert "dropped 2 exact duplicate" in capsys.readouterr().out


def test_many_problems_are_listed_together(tmp_path):
    rows = toy_rows(10, 3)
    for r in rows:
        r["question"] = " "
    with pytest.raises(StageError, match="(?s)30 invalid row.*and 10 more"):
        _validate(write_csv(tmp_path / "m.csv", rows))


def test_main_writes_nothing_on_bad_input(tmp_path, tiny_model_dir):
    path = _csv_with(tmp_path, 1, question="")
    cfg = tmp_path / "params.yaml"
    data = yaml.safe_load(Path("params.yaml").read_text())
    data["fetch"].update(source="file", path=str(path))
    data["fetch"]["corpus"]["source"] = "pairs"
    data["common"]["model"].update(source="local", path=str(tiny_model_dir))
    cfg.write_text(yaml.safe_dump(data))
    out, model_out = tmp_path / "data" / "fetch", tmp_path / "models" / "base"
    code = cli.run_stage(
        fetch.main, ["--params", str(cfg), "--out", str(out), "--model-out", str(model_out)]
    )
    assert code == 1
    assert not out.exists() and not model_out.exists()
    leftovers = [path for path in tmp_path.rglob(".*.tmp")]
    assert leftovers == []


def test_tsv_reads_like_csv(tmp_path):
    rows = toy_rows(3, 2)
    path = tmp_path / "pairs.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    assert _validate(path) == _validate(write_csv(tmp_path / "pairs.csv", rows))


def test_without_a_chunk_id_column_passages_are_identified_by_text(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "global_chunk_id"} for r in toy_rows(4, 3)]
    path = write_csv(tmp_path / "no_ids.csv", rows)
    cols = config.Columns(anchor="question", positive="text", chunk_id=None, document_id=None)
    pairs = fetch.validate_pairs(records.read_records(path), cols, str(path))
    ids = {pair["chunk_id"] for pair in pairs}
    assert len(ids) == 4  # one id per distinct passage, the same for its three questions
    by_text = {pair["positive"]: pair["chunk_id"] for pair in pairs}
    assert all(pair["chunk_id"] == by_text[pair["positive"]] for pair in pairs)
    assert records.text_id("same text") == records.text_id("same text") != records.text_id("other")


def test_one_text_under_two_chunk_ids_is_reported(tmp_path, caplog):
    rows = toy_rows(3, 2)
    rows[4]["text"] = rows[5]["text"] = rows[0]["text"]  # chunk 2 now repeats chunk 0's text
    pairs = _validate(write_csv(tmp_path / "shared.csv", rows))
    assert len(pairs) == 6
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 passage text(s)" in warning.getMessage()
    assert "row 1 and row 5" in warning.getMessage()


@pytest.mark.parametrize("sep", [",", "\t"])
def test_a_repeated_header_name_is_an_error_naming_file_and_column(tmp_path, sep):
    suffix = "csv" if sep == "," else "tsv"
    path = tmp_path / f"dup.{suffix}"
    path.write_text(
        sep.join(["question", "text", "question", "global_chunk_id"]) + "\n"
        + sep.join(["first question?", "a passage", "second question?", "1"]) + "\n"
    )  # fmt: skip
    with pytest.raises(StageError) as err:
        records.read_records(path)
    assert str(err.value) == (
        f"{path}: header: column 'question' appears twice (columns 1 and 3); "
        "rename one so each column has one name"
    )


def test_a_repeated_key_in_a_jsonl_object_is_an_error(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(
        '{"question": "q?", "text": "t", "global_chunk_id": 1, "case_name": "c"}\n'
        '{"question": "q?", "question": "other?", "text": "t", "global_chunk_id": 1}\n'
    )
    with pytest.raises(StageError, match=r"dup\.jsonl: line 2: key 'question' appears twice"):
        records.read_records(path)


def _fetch_main(tmp_path, data_path, model_dir, **fetch_params):
    cfg = tmp_path / "params.yaml"
    data = yaml.safe_load(Path("params.yaml").read_text())
    data["fetch"].update(source="file", path=str(data_path), **fetch_params)
    data["fetch"]["corpus"].setdefault("source", "pairs")
    if "corpus" not in fetch_params:
        data["fetch"]["corpus"]["source"] = "pairs"
    data["common"]["model"].update(source="local", path=str(model_dir))
    data["common"]["max_seq_length"] = 12
    cfg.write_text(yaml.safe_dump(data))
    out, model_out = tmp_path / "data" / "fetch", tmp_path / "models" / "base"
    argv = ["--params", str(cfg), "--out", str(out), "--model-out", str(model_out)]
    return cli.run_stage(fetch.main, argv), out, model_out


def test_over_length_texts_are_counted_printed_and_recorded(tmp_path, tiny_model_dir, capsys):
    # Toy passages are 13 words (15 tokens with [CLS] and [SEP]); questions 5 words + "?".
    rows = toy_rows(4, 2)
    rows[0]["question"] = rows[1]["question"] = " ".join(["court"] * 20)
    code, out, _ = _fetch_main(tmp_path, write_csv(tmp_path / "p.csv", rows), tiny_model_dir)
    assert code == 0
    cut = io.read_json(out / "source.json")["truncation"]
    assert cut["passages"] == 4 and cut["passages_cut"] == 4
    assert cut["questions_cut"] == 1  # the two long questions are one distinct text
    assert cut["passage_tokens"] == 4 * 15 and cut["passage_tokens_lost"] == 4 * 3
    assert cut["passage_share_lost"] == pytest.approx(0.2)
    assert (
        "fetch: warning: 4 of 4 passages and 1 of 7 questions are longer than "
        "common.max_seq_length=12 tokens; 20.0% of passage tokens are cut off"
    ) in capsys.readouterr().out


def test_a_cut_share_above_the_limit_fails_and_writes_nothing(tmp_path, tiny_model_dir, capsys):
    path = write_csv(tmp_path / "p.csv", toy_rows(4, 2))
    code, out, model_out = _fetch_main(tmp_path, path, tiny_model_dir, max_truncated_share=0.1)
    assert code == 1
    assert not out.exists() and not model_out.exists()
    assert list(tmp_path.rglob(".*.tmp")) == []
    assert (
        f"error: the labelled passages of {path}: 20.0% of passage tokens lie beyond "
        "common.max_seq_length=12 "
        "(limit: params key 'fetch.max_truncated_share' = 0.1)"
    ) in capsys.readouterr().err
    code, out, _ = _fetch_main(tmp_path, path, tiny_model_dir, max_truncated_share=0.25)
    assert code == 0 and (out / "pairs.jsonl").is_file()
