"""Reciprocal rank fusion, checked against scores computed by hand."""

from __future__ import annotations

import pytest

from embedtune.retrieval import fusion, search


def test_rrf_scores_by_hand():
    lexical = ["a", "b", "c"]
    dense = ["c", "a", "d"]
    # k = 60: a = 1/61 + 1/62, c = 1/63 + 1/61, b = 1/62, d = 1/63.
    by_hand = {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    expected = sorted(by_hand, key=by_hand.get, reverse=True)
    assert expected == ["a", "c", "b", "d"]
    assert fusion.rrf([lexical, dense], k=60) == expected
    # k = 0 weights the first places most: a = 1 + 1/2, c = 1/3 + 1, b = 1/2, d = 1/3.
    assert fusion.rrf([lexical, dense], k=0) == ["a", "c", "b", "d"]
    assert fusion.rrf([lexical, dense], k=60, keep=2) == ["a", "c"]


def test_a_large_k_turns_rrf_into_a_vote_count():
    """With k far above the ranks, 1/(k + r) is nearly constant, so a passage in both
    rankings beats one ranked first by a single system."""
    lexical = ["solo", "x", "y", "both"]
    dense = ["z", "w", "v", "both"]
    assert fusion.rrf([lexical, dense], k=1)[0] == "solo"
    assert fusion.rrf([lexical, dense], k=1000)[0] == "both"


def test_ties_go_to_the_lower_corpus_id():
    # x is first lexically and second densely, y the reverse: equal sums in either order.
    assert fusion.rrf([["y", "x"], ["x", "y"]], k=60) == ["x", "y"]
    assert fusion.rrf([["x", "y"], ["y", "x"]], k=60) == ["x", "y"]


def test_fused_metric_by_hand():
    """The relevant passage is 3rd lexically and 2nd densely; fused it is 1st
    (1/63 + 1/62 beats every other passage's single or lower terms)."""
    lexical = [["p1", "p2", "rel", "p4"]]
    dense = [["p5", "rel", "p6", "p7"]]
    fused = fusion.fuse(lexical, dense, k=60)
    assert fused[0][:3] == ["rel", "p1", "p5"]
    data = search.IRData(
        {c: c for c in ("p1", "p2", "rel", "p4", "p5", "p6", "p7")}, {"q": "q"}, {"q": {"rel"}}
    )
    metrics, per_query = search.score_rankings(fused, data)
    assert metrics["ndcg@10"] == 1.0 and per_query == {"q": 1.0}
    # Alone, each system has it lower: ndcg@10 = 1/log2(4) and 1/log2(3).
    assert search.score_rankings(lexical, data)[0]["ndcg@10"] == pytest.approx(0.5)
    assert search.score_rankings(dense, data)[0]["ndcg@10"] == pytest.approx(1 / 1.5849625)


def test_fuse_wants_one_ranking_per_query_from_each():
    with pytest.raises(ValueError, match="1 lexical rankings but 2 dense"):
        fusion.fuse([["a"]], [["a"], ["b"]], k=60)


def test_depth_reads_small_corpora_whole():
    assert fusion.depth(635) == 635
    assert fusion.depth(200_000) == fusion.DEPTH
