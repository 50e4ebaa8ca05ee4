"""Quantized retrieval: ndcg@10 and storage of float32, int8 and binary corpus embeddings.

The embeddings are the float ones the evaluation already computed (nothing is encoded
again); at each dimension they are truncated and re-normalised, then quantized with
sentence-transformers' ``quantize_embeddings``, and searched the way its
``semantic_search_usearch`` does: the query is quantized alike, an exact search of the
quantized index (int8 inner product; Hamming distance between packed bits for ``ubinary``)
takes ``RESCORE_MULTIPLIER`` x the results wanted, and those candidates are rescored with
the float query (against the dequantized int8 vectors, or the 0/1 bits), which is what a
deployment that stores only the quantized index can do. Exact search, in numpy: at these
sizes an ANN library would only add its own error to the quantization's.
"""

from __future__ import annotations

import math

import numpy as np

from embedtune.metrics import HEADLINE, NDCG_K, PRECISIONS, key
from embedtune.retrieval import vectors
from embedtune.retrieval.search import SCORE_CELLS, IRData, score_rankings, scored_queries

RESCORE_MULTIPLIER = 4
# Results a query asks the index for: the ten that ndcg@10 scores. Rescoring then sees 40
# candidates, as a deployment serving ten results would (not the 400 that ranking a full
# MAX_K = 100 would rescore, which would flatter the quantized index).
TOP_K = NDCG_K


def bytes_per_vector(precision: str, dim: int) -> int:
    """Storage of one corpus vector: 4 bytes a value, 1 byte, or one bit packed in bytes."""
    return {"float32": 4 * dim, "int8": dim, "ubinary": math.ceil(dim / 8)}[precision]


def index_bytes(precision: str, dim: int, passages: int) -> int:
    """The corpus index: its vectors, plus for int8 the per-dimension float32 minimum and
    maximum needed to quantize queries and dequantize candidates."""
    extra = 2 * 4 * dim if precision == "int8" else 0
    return passages * bytes_per_vector(precision, dim) + extra


def search(
    q: np.ndarray,
    c: np.ndarray,
    precision: str,
    top_k: int = TOP_K,
    multiplier: int = RESCORE_MULTIPLIER,
) -> np.ndarray:
    """Row numbers of ``c`` (unit vectors, rows in corpus id order) retrieved per query of
    ``q`` (unit vectors) from a ``precision`` index, best first."""
    from sentence_transformers.util.quantization import quantize_embeddings

    n, dim = c.shape
    if precision == "float32":
        coarse_q, coarse_c, rescore_c = q, c, None
    elif precision == "int8":
        # Calibrated on the corpus embeddings: the index's own value range per dimension.
        ranges = np.vstack((c.min(axis=0), c.max(axis=0))).astype(np.float32)
        coarse_c = quantize_embeddings(c, "int8", ranges=ranges).astype(np.float32)
        coarse_q = quantize_embeddings(q, "int8", ranges=ranges).astype(np.float32)
        # quantize_embeddings' buckets: 255 steps from the minimum, shifted by -128.
        steps = (ranges[1] - ranges[0]) / 255
        rescore_c = (coarse_c + 128) * np.where(steps == 0, 1, steps) + ranges[0]
    elif precision == "ubinary":
        bits_c = np.unpackbits(quantize_embeddings(c, "ubinary"), axis=1)[:, :dim]
        bits_q = np.unpackbits(quantize_embeddings(q, "ubinary"), axis=1)[:, :dim]
        # On +-1 codes the inner product is dim - 2 * Hamming distance: the same order.
        rescore_c = bits_c.astype(np.float32)
        coarse_c, coarse_q = 2 * rescore_c - 1, 2 * bits_q.astype(np.float32) - 1
    else:
        raise ValueError(f"unknown precision {precision!r} (want one of {PRECISIONS})")
    want = min(top_k * multiplier if rescore_c is not None else top_k, n)
    cols = np.broadcast_to(np.arange(n), (1, n))
    out = []
    # Bounded score and candidate matrices, as retrieval bounds its blocks.
    block = max(1, SCORE_CELLS // max(n, want * dim))
    for s in range(0, len(q), block):
        scores = coarse_q[s : s + block] @ coarse_c.T
        _, cand = vectors.top_k(scores, np.broadcast_to(cols, scores.shape), want)
        if rescore_c is not None:
            fine = np.einsum("qd,qkd->qk", q[s : s + block], rescore_c[cand])
            _, cand = vectors.top_k(fine, cand, min(top_k, want))
        out.append(cand[:, :top_k])
    return np.concatenate(out) if out else np.zeros((0, top_k), dtype=int)


def quantized_rankings(
    q_emb, c_emb, data: IRData, dim: int, precision: str, top_k: int = TOP_K
) -> list[list[str]]:
    """Each scored query's top ``top_k`` corpus ids at one dimension and precision."""
    _, keep = scored_queries(data)
    q = vectors.unit_rows(np.asarray(q_emb, dtype=np.float32)[keep, :dim])
    ids = list(data.corpus)
    order = sorted(range(len(ids)), key=ids.__getitem__)  # rows in id order: ties by id
    c = vectors.unit_rows(np.asarray(c_emb, dtype=np.float32)[order, :dim])
    return [[ids[order[j]] for j in row] for row in search(q, c, precision, top_k).tolist()]


def quantized_metrics(q_emb, c_emb, data: IRData, dims: list[int]) -> dict[str, float | int]:
    """Flat keys for the metrics JSON: ``<precision>_dim_<d>_ndcg@10`` (int8, ubinary; the
    float32 figure is ``dim_<d>_ndcg@10`` itself), and for every precision
    ``<precision>_dim_<d>_bytes_per_vector`` and ``<precision>_dim_<d>_index_bytes``."""
    out: dict[str, float | int] = {}
    n = len(data.corpus)
    for d in dims:
        for precision in PRECISIONS:
            if precision != "float32":
                rankings = quantized_rankings(q_emb, c_emb, data, d, precision)
                metrics, _ = score_rankings(rankings, data)
                out[key(d, HEADLINE, f"{precision}_")] = round(metrics[HEADLINE], 6)
            out[key(d, "bytes_per_vector", f"{precision}_")] = bytes_per_vector(precision, d)
            out[key(d, "index_bytes", f"{precision}_")] = index_bytes(precision, d, n)
    return out
