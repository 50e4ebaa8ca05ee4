"""Hard-negative mining: negatives come from the training passages and never answer the
question."""

from __future__ import annotations

import logging

import pytest

from embedtune import config
from embedtune.errors import StageError
from embedtune.training.mining import mine_negatives, pick_negatives, relevant_texts
from tests.tiny import toy_rows


def _mining_params(**changes):
    conf = config.load("params.yaml")
    hn = config.replace(conf.train.hard_negatives, enabled=True, **changes)
    return config.replace(conf, train=config.replace(conf.train, hard_negatives=hn))


def test_relevant_texts_gathers_every_passage_of_a_question():
    rows = [
        {"anchor": "q1", "positive": "p1"},
        {"anchor": "q2", "positive": "p2"},
        {"anchor": "q1", "positive": "p3"},
    ]
    assert relevant_texts(rows) == {"q1": {"p1", "p3"}, "q2": {"p2"}}


def test_pick_negatives_skips_passages_relevant_to_the_question():
    relevant = {"q1": {"p1", "p2"}, "q2": {"p3"}}
    mined = [
        {"anchor": "q1", "positive": "p1", "negative_1": "p2", "negative_2": "p4"},
        {"anchor": "q2", "positive": "p3", "negative_1": "p3", "negative_2": None},
    ]
    assert pick_negatives(mined, 2, relevant) == [
        {"anchor": "q1", "positive": "p1", "negative": "p4"}  # p2 answers q1 too: not a negative
    ]


def test_mined_negatives_come_from_train_and_are_never_relevant(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    conf = _mining_params(relative_margin=0.0)
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in toy_rows(12, 3)]
    # One question asked of two passages: the other passage must never be its negative.
    rows.append({"anchor": rows[0]["anchor"], "positive": rows[3]["positive"]})
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    mined = mine_negatives(model, rows, conf)
    assert len(mined) >= len(rows) // 2
    relevant = relevant_texts(rows)
    passages = {r["positive"] for r in rows}
    for r in mined:
        assert list(r) == ["anchor", "positive", "negative"]
        assert r["negative"] in passages
        assert r["negative"] not in relevant[r["anchor"]]


def test_no_usable_negative_is_an_error(monkeypatch):
    import sentence_transformers.util

    conf = _mining_params()
    rows = [{"anchor": "q1", "positive": "p1"}, {"anchor": "q1", "positive": "p2"}]

    def only_relevant_candidates(pairs, model, **kwargs):
        return [{"anchor": "q1", "positive": "p1", "negative_1": "p2"}]

    monkeypatch.setattr(sentence_transformers.util, "mine_hard_negatives", only_relevant_candidates)
    with pytest.raises(StageError, match="found no usable negative"):
        mine_negatives(None, rows, conf)


def test_negatives_are_drawn_from_the_pool_only(tiny_model_dir):
    """With a knowledge-base pool, every negative is a pool passage (so nothing the split
    held out can reach training) and never one relevant to its question."""
    from sentence_transformers import SentenceTransformer

    from tests.tiny import toy_corpus

    conf = _mining_params(relative_margin=0.0)
    source = toy_rows(12, 3)
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in source]
    kb = toy_corpus(source, extra=40)
    held_out = {kb[i]["text"] for i in (1, 5, 20, 30)}  # as if dev/test passages
    pool = [k["text"] for k in kb if k["text"] not in held_out]
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    mined = mine_negatives(model, rows, conf, pool)
    assert mined
    relevant = relevant_texts(rows)
    negatives = {r["negative"] for r in mined}
    assert negatives <= set(pool) and not negatives & held_out
    assert negatives - {r["positive"] for r in rows}, "no unlabelled passage was ever mined"
    assert all(r["negative"] not in relevant[r["anchor"]] for r in mined)


def test_stored_embeddings_spare_the_corpus_encoding_and_give_the_same_negatives(
    tiny_model_dir, tmp_path, library_log
):
    """With the baseline's rows for every passage, mining encodes the questions only, and
    picks exactly the negatives it picks when it encodes the corpus itself."""
    from sentence_transformers import SentenceTransformer

    from embedtune.retrieval import embedding_cache
    from tests.tiny import toy_corpus

    conf = _mining_params(relative_margin=0.0)
    source = toy_rows(12, 3)
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in source]
    kb = {str(k["global_chunk_id"]): k["text"] for k in toy_corpus(source, extra=30)}
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    emb = model.encode_document(list(kb.values()), batch_size=conf.common.eval_batch_size)
    identity = embedding_cache.identity(tiny_model_dir, conf.common)
    embedding_cache.save(tmp_path / "emb", list(kb), emb, identity)
    stored, _ = embedding_cache.lookup(tmp_path / "emb", identity, kb)

    expected = mine_negatives(model, rows, conf, list(kb.values()))
    encoded: list[str] = []
    original = model.encode_document

    def counting(texts, **kwargs):
        encoded.extend(texts)
        return original(texts, **kwargs)

    model.encode_document = counting
    mined = mine_negatives(model, rows, conf, list(kb.values()), stored)
    out = library_log.text
    assert encoded == [], f"{len(encoded)} passages encoded again"
    assert f"reuses the baseline's embeddings of {len(kb)} of {len(kb)} passages" in out
    assert "did not pick up" not in out
    assert not [r for r in library_log.records if r.levelno >= logging.WARNING]
    assert not [m for m in library_log.messages if m.startswith("train:")]  # cli adds it
    assert mined == expected
