"""Counting what common.max_seq_length cuts off, with a real tokenizer."""

from __future__ import annotations

import pytest

from embedtune.data import truncation
from embedtune.errors import StageError


def _words(texts):
    return [len(t.split()) for t in texts]


def test_measure_counts_cut_texts_and_lost_passage_tokens():
    passages = {"a": "one two three", "b": "one two three four five six", "c": "x"}
    cut = truncation.measure(["short q", "a much longer question here"], passages, _words, 4)
    assert (cut["questions"], cut["questions_cut"]) == (2, 1)
    assert (cut["passages"], cut["passages_cut"]) == (3, 1)
    assert (cut["passage_tokens"], cut["passage_tokens_lost"]) == (10, 2)
    assert cut["passage_share_lost"] == pytest.approx(0.2)
    assert (cut["longest_passage_id"], cut["longest_passage_tokens"]) == ("b", 6)
    assert truncation.describe(cut) == (
        "1 of 3 passages and 1 of 2 questions are longer than common.max_seq_length=4 tokens; "
        "20.0% of passage tokens are cut off (longest: chunk 'b', 6 tokens)"
    )


def test_prompts_count_towards_the_length():
    cut = truncation.measure(["q"], {"a": "one two three"}, _words, 3, "query:", "passage: of ")
    assert cut["passages_cut"] == 1 and cut["passage_tokens_lost"] == 2
    assert cut["questions_cut"] == 0


def test_check_fails_only_above_the_limit():
    cut = truncation.measure([], {"a": "one two three four"}, _words, 3)  # 25% lost
    truncation.check(cut, None, "f.csv")
    truncation.check(cut, 0.25, "f.csv")
    with pytest.raises(StageError, match="f.csv: 25.0% of passage tokens.*max_truncated_share"):
        truncation.check(cut, 0.2, "f.csv")


def test_the_real_tokenizer_is_not_cut_by_its_own_saved_truncation(minilm_dir):
    # MiniLM's tokenizer.json carries truncation at 128; the counts must see past it.
    count = truncation.token_counter(minilm_dir)
    assert count(["word " * 1000, "court"]) == [1002, 3]
    # MiniLM's Transformer module sits at the folder's root: reading its tokenizer there
    # directly gives the same counts.
    assert truncation.tokenizer_counter(minilm_dir)(["word " * 1000, "court"]) == [1002, 3]


def test_a_folder_without_a_tokenizer_is_a_clear_error(tmp_path):
    (tmp_path / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]'
    )
    with pytest.raises(StageError, match="cannot load the model's tokenizer"):
        truncation.token_counter(tmp_path)
    with pytest.raises(StageError, match="modules.json: not found"):
        truncation.token_counter(
            tmp_path / "elsewhere"
        )  # fetch needs a sentence-transformers folder
