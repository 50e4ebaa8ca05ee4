"""The two vector operations every search here shares: unit-length rows, and the best ``k``
of a score matrix with ties broken by id.

numpy only (no torch): the exported-model runtime normalises with it and must stay light.
"""

from __future__ import annotations

import numpy as np

# Below this norm a row is treated as zero: divided by NORM_FLOOR instead of its norm, it
# stays (near) zero instead of becoming NaN. sentence-transformers' Normalize and
# torch.nn.functional.normalize use the same floor, so the embeddings agree with theirs.
NORM_FLOOR = 1e-12

# How many candidates beyond the k wanted a top-k selection takes. Selections
# (np.argpartition, torch.topk, bm25s' retrieve) keep an arbitrary subset of the scores
# tied at the k-th place; taking TIE_MARGIN more and then sorting those by (score, id) puts
# the lower ids first, as sentence-transformers' evaluator does, unless more than
# TIE_MARGIN extra passages tie at the cut (then which of them appear is arbitrary).
TIE_MARGIN = 16


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` with every row scaled to length 1; an all-zero row stays zero."""
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), NORM_FLOOR)


def shortlist(k: int, n: int) -> int:
    """How many of ``n`` candidates a top-``k`` selection should take (``TIE_MARGIN``)."""
    return min(k + TIE_MARGIN, n)


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` highest ``scores`` and their ``ids`` (same shape as ``scores``,
    any sortable values: row numbers, ranks of string ids), best first, equal scores in
    ascending id order. Returns (scores, ids), each of shape (rows, min(k, columns)).

    ``scores`` may already be a shortlist from another selection (torch.topk, BM25) of
    ``shortlist(k, n)`` columns: then it is only sorted."""
    take = shortlist(k, scores.shape[1])
    if take < scores.shape[1]:
        part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        scores, ids = np.take_along_axis(scores, part, 1), np.take_along_axis(ids, part, 1)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def id_ranks(ids: list[str]) -> tuple[np.ndarray, list[str]]:
    """(each id's place in ascending order, the ids in that order): integer stand-ins that
    sort as the string ids do, for ``top_k``'s tie-break."""
    order = sorted(range(len(ids)), key=ids.__getitem__)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks, [ids[i] for i in order]
