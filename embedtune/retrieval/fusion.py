"""Hybrid retrieval: reciprocal rank fusion (RRF) of the lexical and the dense ranking.

RRF scores a passage by the sum over rankings of 1 / (k + rank), ranks from 1; a passage
missing from a ranking gets nothing from it. It needs only ranks, so BM25 scores and cosines
never have to be put on one scale, and k (``common.rrf_k``, 60 in the method's paper) damps
the weight of the very first places.
"""

from __future__ import annotations

from embedtune.metrics import MAX_K

# How deep each ranking is read before fusing. A passage below this rank in one ranking
# loses at most 1 / (k + DEPTH + 1) (< 0.001 at k = 60), a hundredth of what a top-10 place
# is worth, so reading deeper cannot reorder the top ten in practice; the default corpus
# (635 passages) is read whole. Bounded so a 200k-passage knowledge base stays cheap.
DEPTH = 1000


def depth(corpus_size: int) -> int:
    """Ranks read from each ranking: the whole corpus when it is smaller than DEPTH."""
    return min(DEPTH, corpus_size)


def rrf(rankings: list[list[str]], k: int, keep: int = MAX_K) -> list[str]:
    """One query's fused ranking (top ``keep``) of several rankings of corpus ids.

    Ties (e.g. a passage first lexically and third densely against one third lexically and
    first densely: the same two terms, added in either order, give the same float) go to
    the lower corpus id, as every ranking in this project breaks ties."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda cid: (-scores[cid], cid))[:keep]


def fuse(
    lexical: list[list[str]], dense: list[list[str]], k: int, keep: int = MAX_K
) -> list[list[str]]:
    """Per query (same order in both), the RRF of its lexical and its dense ranking."""
    if len(lexical) != len(dense):
        raise ValueError(f"fuse: {len(lexical)} lexical rankings but {len(dense)} dense ones")
    return [rrf([a, b], k, keep) for a, b in zip(lexical, dense, strict=True)]
