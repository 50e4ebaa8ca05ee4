"""The shared vector operations: unit rows (a zero row stays zero) and the best k with ties
broken by id, also across the cut of a shortlist."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedtune.retrieval import search, vectors


def test_unit_rows_have_length_one_and_a_zero_row_stays_zero():
    matrix = np.array([[3.0, 4.0], [0.0, 0.0], [1e-30, 0.0]], dtype=np.float32)
    unit = vectors.unit_rows(matrix)
    assert unit.dtype == np.float32  # the floor does not promote float32 to float64
    np.testing.assert_array_equal(unit[0], np.array([0.6, 0.8], dtype=np.float32))
    assert np.isfinite(unit).all()
    assert not unit[1].any()  # 0 / NORM_FLOOR, not 0 / 0
    assert unit[2, 0] == pytest.approx(1e-18)  # below the floor: scaled by it, not blown up


def test_unit_rows_agree_with_torch_normalize():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 16)).astype(np.float32)
    ref = torch.nn.functional.normalize(torch.from_numpy(matrix), dim=-1).numpy()
    np.testing.assert_allclose(vectors.unit_rows(matrix), ref, atol=1e-7)


def test_top_k_orders_equal_scores_by_ascending_id():
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.1]], dtype=np.float32)
    ids = np.array([[40, 30, 10, 31, 0]])
    best_scores, best_ids = vectors.top_k(scores, ids, 4)
    assert best_ids.tolist() == [[30, 31, 10, 40]]
    np.testing.assert_array_equal(best_scores, scores[:, [1, 3, 2, 0]])


def test_ties_at_the_cut_of_a_wide_row_are_ordered_by_id():
    """k + TIE_MARGIN columns tied at the top of 40: argpartition keeps them all and the
    lowest ids come first. With more ties than that, which of them are kept is arbitrary
    (the documented limit), but only tied ones are returned."""
    n, k = 40, 3
    tied = vectors.shortlist(k, n)
    assert tied == k + vectors.TIE_MARGIN < n  # a real cut is made
    ids = np.tile(np.arange(n)[::-1], (2, 1))  # column j has id 39 - j
    scores = np.zeros((2, n), dtype=np.float32)
    scores[:, :tied] = 1.0  # ids 39 .. 21
    _, best = vectors.top_k(scores, ids, k)
    assert best.tolist() == [[21, 22, 23]] * 2
    scores[:, : tied + 5] = 1.0  # ids 39 .. 16: more ties than the shortlist holds
    best_scores, best = vectors.top_k(scores, ids, k)
    assert (best_scores == 1).all() and (best >= 16).all()
    assert (np.diff(best, axis=1) > 0).all()  # still in id order among those kept


def test_a_shortlist_from_another_selection_is_only_sorted():
    scores = np.array([[0.2, 0.7, 0.7]], dtype=np.float32)
    ids = np.array([[5, 9, 2]])
    best_scores, best = vectors.top_k(scores, ids, 10)  # k beyond the shortlist: all of it
    assert best.tolist() == [[2, 9, 5]]
    assert best_scores.shape == (1, 3)
    empty_scores, empty = vectors.top_k(np.zeros((2, 0), np.float32), np.zeros((2, 0), int), 5)
    assert empty.shape == empty_scores.shape == (2, 0)


def test_shortlist_is_k_plus_the_margin_within_the_candidates():
    assert vectors.shortlist(10, 1000) == 10 + vectors.TIE_MARGIN
    assert vectors.shortlist(10, 12) == 12


def test_id_ranks_sort_as_the_string_ids_do():
    ids = ["p10", "p2", "a", "p1"]
    ranks, in_order = vectors.id_ranks(ids)
    assert in_order == sorted(ids)
    assert [in_order[r] for r in ranks] == ids


def test_dense_and_bm25_rankings_share_the_tie_break():
    """Equal cosines and equal BM25 scores (the same passage twice under two ids) both rank
    the lower id first."""
    q = torch.tensor([[1.0, 0.0]])
    c = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 0.0]])
    assert search.ranked_hits(q, c, ["m", "z", "b"], 2) == [["b", "z"]]
    corpus = {"z": "jury verdict", "b": "jury verdict", "m": "patent claim"}
    data = search.IRData(corpus, {"q": "jury verdict"}, {"q": {"z"}})
    assert search.bm25_rankings(data, 3) == [["b", "z", "m"]]
    assert search.bm25_rankings(data, 3, matched_only=True) == [["b", "z"]]
