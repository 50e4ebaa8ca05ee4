"""split is seeded, complete, and leak-free for the group strategies."""

from __future__ import annotations

import pytest

from embedtune import config
from embedtune.errors import StageError
from stages import split


def _pairs(n_chunks=40, per_chunk=3, n_docs=8):
    return [
        {
            "anchor": f"q{c}-{i}",
            "positive": f"text {c}",
            "chunk_id": str(c),
            "document_id": f"doc{c % n_docs}",
        }
        for c in range(n_chunks)
        for i in range(per_chunk)
    ]


@pytest.mark.parametrize("strategy", ["random", "by_chunk", "by_document"])
def test_parts_cover_every_pair_once_and_are_seeded(strategy):
    cfg = config.Split(strategy=strategy, test_size=0.2, dev_size=0.1)
    pairs = _pairs()
    parts = split.split_pairs(pairs, cfg, seed=7)
    ids = sorted(r["id"] for rows in parts.values() for r in rows)
    assert ids == list(range(len(pairs)))
    assert all(parts[n] for n in ("train", "dev", "test"))
    assert parts == split.split_pairs(pairs, cfg, seed=7)
    assert parts != split.split_pairs(pairs, cfg, seed=8)


@pytest.mark.parametrize(
    ("strategy", "key"), [("by_chunk", "chunk_id"), ("by_document", "document_id")]
)
def test_group_strategies_share_no_group_across_parts(strategy, key):
    parts = split.split_pairs(
        _pairs(), config.Split(strategy=strategy, test_size=0.2, dev_size=0.1), seed=1
    )
    groups = {n: {r[key] for r in rows} for n, rows in parts.items()}
    assert not groups["train"] & groups["test"]
    assert not groups["train"] & groups["dev"]
    assert not groups["dev"] & groups["test"]


def test_random_split_sizes_follow_params():
    parts = split.split_pairs(
        _pairs(100, 1), config.Split(strategy="random", test_size=0.1, dev_size=0.1), seed=0
    )
    assert [len(parts[n]) for n in ("train", "dev", "test")] == [80, 10, 10]


def test_random_split_does_leak_chunks_as_documented():
    parts = split.split_pairs(
        _pairs(), config.Split(strategy="random", test_size=0.2, dev_size=0.0), seed=0
    )
    assert {r["chunk_id"] for r in parts["train"]} & {r["chunk_id"] for r in parts["test"]}


def test_too_little_data_is_a_clear_error():
    with pytest.raises(StageError, match="only 2 pairs"):
        split.split_pairs(
            _pairs(2, 1), config.Split(strategy="random", test_size=0.5, dev_size=0.0), seed=0
        )


def test_random_split_keeps_a_repeated_question_on_one_side():
    pairs = _pairs(60, 2)
    for i in range(0, 60, 3):  # a question asked of two passages, twenty times over
        pairs[i * 2 + 1]["anchor"] = pairs[(i + 1) * 2]["anchor"]
    for seed in range(5):
        parts = split.split_pairs(
            pairs, config.Split(strategy="random", test_size=0.2, dev_size=0.1), seed=seed
        )
        sides = {n: {r["anchor"] for r in rows} for n, rows in parts.items()}
        assert not sides["train"] & sides["test"] and not sides["train"] & sides["dev"]
        assert not sides["dev"] & sides["test"]


def test_random_split_of_unique_questions_is_the_plain_row_split():
    from sklearn.model_selection import train_test_split

    pairs = _pairs(50, 2)
    parts = split.split_pairs(
        pairs, config.Split(strategy="random", test_size=0.2, dev_size=0.0), seed=3
    )
    _, held = train_test_split(list(range(len(pairs))), test_size=0.2, random_state=3)
    assert sorted(r["id"] for r in parts["test"]) == sorted(held)


def _knowledge_base(pairs, extra_per_doc=3, n_docs=8):
    """The pairs' chunks plus unlabelled passages in every document and some in none."""
    kb = {
        r["chunk_id"]: {"id": r["chunk_id"], "text": r["positive"], "document_id": r["document_id"]}
        for r in pairs
    }
    kb = list(kb.values())
    for d in range(n_docs):
        kb += [
            {"id": f"u{d}-{i}", "text": f"unlabelled {d} {i}", "document_id": f"doc{d}"}
            for i in range(extra_per_doc)
        ]
    kb += [{"id": f"x{i}", "text": f"no document {i}", "document_id": None} for i in range(4)]
    return kb


@pytest.mark.parametrize("strategy", ["by_chunk", "by_document"])
def test_no_passage_of_a_held_out_chunk_or_document_reaches_the_train_pool(strategy):
    pairs = _pairs()
    kb = _knowledge_base(pairs)
    parts = split.split_pairs(
        pairs, config.Split(strategy=strategy, test_size=0.2, dev_size=0.1), seed=2
    )
    pool = set(split.train_pool(parts, kb, strategy))
    held = [r for n in ("dev", "test") for r in parts[n]]
    assert pool.isdisjoint(r["chunk_id"] for r in held)
    by_id = {passage["id"]: passage for passage in kb}
    assert {by_id[i]["text"] for i in pool}.isdisjoint(r["positive"] for r in held)
    # Every training chunk and every passage in no document stays available.
    assert {r["chunk_id"] for r in parts["train"]} <= pool
    assert {f"x{i}" for i in range(4)} <= pool
    held_docs = {r["document_id"] for r in held}
    unlabelled_of_held_docs = {
        passage["id"]
        for passage in kb
        if passage["id"].startswith("u") and passage["document_id"] in held_docs
    }
    if strategy == "by_document":
        assert pool.isdisjoint(unlabelled_of_held_docs) and unlabelled_of_held_docs
        assert all(by_id[i]["document_id"] not in held_docs for i in pool)
    else:  # by_chunk: unlabelled passages are no held-out chunk
        assert unlabelled_of_held_docs <= pool


def test_under_random_the_whole_knowledge_base_is_the_train_pool():
    pairs = _pairs()
    kb = _knowledge_base(pairs)
    parts = split.split_pairs(
        pairs, config.Split(strategy="random", test_size=0.2, dev_size=0.1), seed=2
    )
    assert split.train_pool(parts, kb, "random") == sorted(passage["id"] for passage in kb)
