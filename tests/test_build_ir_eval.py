"""build_ir_eval: unique-chunk corpus by default, the reference's per-row corpus on request."""

from __future__ import annotations

from stages import build_ir_eval


def _pairs():
    rows = [
        ("how long is the term?", "c1", "Term is five years."),
        ("who pays the fee?", "c1", "Term is five years."),
        ("what court heard it?", "c2", "The district court."),
        ("what court heard it?", "c3", "A state court too."),
    ]
    return [
        {"anchor": a, "chunk_id": c, "positive": t, "id": i} for i, (a, c, t) in enumerate(rows)
    ]


def test_unique_corpus_has_one_entry_per_chunk():
    corpus, holders = build_ir_eval.build_corpus(_pairs(), "unique")
    assert corpus == {
        "c1": "Term is five years.",
        "c2": "The district court.",
        "c3": "A state court too.",
    }
    assert holders == {"c1": ["c1"], "c2": ["c2"], "c3": ["c3"]}


def test_rows_corpus_duplicates_chunks_and_all_copies_are_relevant():
    pairs = _pairs()
    corpus, holders = build_ir_eval.build_corpus(pairs, "rows")
    assert len(corpus) == 4
    q = build_ir_eval.build_queries(pairs[:1], pairs, holders)
    # The reference protocol's distortion: a chunk asked about twice is relevant twice.
    assert q["relevant_docs"] == {"q0": ["r0", "r1"]}


def test_a_question_asked_of_two_chunks_has_both_relevant_and_appears_once():
    pairs = _pairs()
    _, holders = build_ir_eval.build_corpus(pairs, "unique")
    q = build_ir_eval.build_queries(pairs[2:], pairs, holders)
    assert q == {"queries": {"q2": "what court heard it?"}, "relevant_docs": {"q2": ["c2", "c3"]}}


def test_rows_corpus_distorts_recall_and_precision_for_the_same_perfect_ranking():
    """The duplicated-relevance effect on numbers: a retriever that ranks the right passage
    first scores recall@1 = 1 on the unique corpus but only 0.5 on the rows corpus (two
    copies are "relevant"), while precision@3 doubles from 1/3 to 2/3."""
    from embedtune.retrieval.search import score_hits

    pairs = _pairs()
    scores = {}
    for mode in ("unique", "rows"):
        corpus, holders = build_ir_eval.build_corpus(pairs, mode)
        rel = set(build_ir_eval.build_queries(pairs[:1], pairs, holders)["relevant_docs"]["q0"])
        # Perfect ranking: every copy of the passage first, then the rest in corpus order.
        hits = sorted(corpus, key=lambda cid: (cid not in rel, cid))
        scores[mode], _ = score_hits([hits], [rel])
    assert scores["unique"]["recall@1"] == 1.0 and scores["rows"]["recall@1"] == 0.5
    assert scores["unique"]["precision@3"] == 1 / 3 and scores["rows"]["precision@3"] == 2 / 3
    assert scores["unique"]["ndcg@10"] == scores["rows"]["ndcg@10"] == 1.0


def test_knowledge_base_passages_join_the_corpus_once_each():
    pairs = _pairs()
    kb = [
        {"id": "c1", "text": "Term is five years.", "document_id": None},
        {"id": "k1", "text": "An unlabelled passage.", "document_id": None},
        {"id": "k2", "text": "Another one.", "document_id": None},
    ]
    for mode, labelled in (("unique", ["c1", "c2", "c3"]), ("rows", ["r0", "r1", "r2", "r3"])):
        corpus, holders = build_ir_eval.build_corpus(pairs, mode, kb)
        assert list(corpus) == [*labelled, "k1", "k2"]
        assert sorted(c for ids in holders.values() for c in ids) == labelled
