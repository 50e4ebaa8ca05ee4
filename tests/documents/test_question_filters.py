"""question_filters: the filters on generated questions, each drop counted. Pins that empty
(also once punctuation is gone), over-long, duplicate (case and punctuation ignored) and
round-trip questions are each dropped and counted under their own name, that the round-trip
can be turned off, and that the BM25 round-trip keeps a question only if it shares a term
with its passage and reaches the minimum score.
"""

from __future__ import annotations

from embedtune.documents import question_filters
from tests.tiny import gen_params


def test_each_filter_is_counted():
    passages = [
        "the tenant screening report was inaccurate and the landlord relied on it",
        "the patent office refused an inventor that was a machine",
        "camera footage of the face was kept without consent",
    ]
    cands = [
        (0, "Was the tenant screening report inaccurate?"),
        (0, "  "),  # empty
        (0, "?!"),  # empty once punctuation is gone
        (1, "word " * 40),  # too long
        (1, "Can a machine be an inventor at the patent office?"),
        (1, "can a machine be an INVENTOR at the patent office"),  # duplicate
        (2, "Was the tenant screening report inaccurate here?"),  # round-trip: passage 0's
        (2, "Was camera footage of the face kept without consent?"),
    ]
    g = gen_params(max_question_tokens=20, roundtrip={"top_k": 1})
    out = question_filters.apply(cands, passages, lambda q: len(q.split()), g)
    assert out.dropped == {
        "empty": 2,
        "too_long": 1,
        "duplicate": 1,
        "near_duplicate": 0,
        "roundtrip": 1,
    }
    assert [pid for pid, _ in out.kept] == [0, 1, 2]
    off = question_filters.apply(
        cands,
        passages,
        lambda q: len(q.split()),
        gen_params(max_question_tokens=20, roundtrip={"retriever": "none"}),
    )
    assert off.dropped["roundtrip"] == 0 and len(off.kept) == 4


def test_bm25_roundtrip_needs_a_shared_term_and_the_min_score():
    passages = ["alpha beta gamma", "delta epsilon zeta"]
    cands = [(0, "nothing in common here"), (0, "alpha"), (1, "epsilon zeta")]
    kept = question_filters.apply(cands, passages, len, gen_params())
    assert kept.kept == [(0, "alpha"), (1, "epsilon zeta")]
    strict = question_filters.apply(cands, passages, len, gen_params(roundtrip={"min_score": 50}))
    assert strict.kept == [] and strict.dropped["roundtrip"] == 3
