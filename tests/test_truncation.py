"""Counting what common.max_seq_length cuts off, with a real tokenizer."""

from __future__ import annotations

import pytest

from embedtune import truncation
from embedtune.errors import StageError


def _words(texts):
    return [len(t.split()) for t in texts]


def test_report_counts_cut_texts_and_lost_passage_tokens():
    passages = {"a": "one two three", "b": "one two three four five six", "c": "x"}
    r = truncation.report(["short q", "a much longer question here"], passages, _words, 4)
    assert (r["questions"], r["questions_cut"]) == (2, 1)
    assert (r["passages"], r["passages_cut"]) == (3, 1)
    assert (r["passage_tokens"], r["passage_tokens_lost"]) == (10, 2)
    assert r["passage_share_lost"] == pytest.approx(0.2)
    assert (r["longest_passage_id"], r["longest_passage_tokens"]) == ("b", 6)


def test_prompts_count_towards_the_length():
    r = truncation.report(["q"], {"a": "one two three"}, _words, 3, "query:", "passage: of ")
    assert r["passages_cut"] == 1 and r["passage_tokens_lost"] == 2
    assert r["questions_cut"] == 0


def test_check_fails_only_above_the_limit():
    r = truncation.report([], {"a": "one two three four"}, _words, 3)  # 25% lost
    truncation.check(r, None, "f.csv")
    truncation.check(r, 0.25, "f.csv")
    with pytest.raises(StageError, match="f.csv: 25.0% of passage tokens.*max_truncated_share"):
        truncation.check(r, 0.2, "f.csv")


def test_the_real_tokenizer_is_not_cut_by_its_own_saved_truncation(minilm_dir):
    # MiniLM's tokenizer.json carries truncation at 128; the counts must see past it.
    count = truncation.token_counter(minilm_dir)
    assert count(["word " * 1000, "court"]) == [1002, 3]


def test_a_folder_without_a_tokenizer_is_a_clear_error(tmp_path):
    (tmp_path / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]'
    )
    with pytest.raises(StageError, match="cannot load the model's tokenizer"):
        truncation.token_counter(tmp_path)
