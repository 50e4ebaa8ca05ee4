"""The retrieval metrics this project reports, and their keys, defined once.

The names and cut-offs follow sentence-transformers' InformationRetrievalEvaluator
(accuracy, precision and recall at 1/3/5/10, mrr@10, ndcg@10, map@100), so a metric here
means what it means there. Kept free of heavy imports: params validation reads it.
"""

from __future__ import annotations

ACCURACY_K = (1, 3, 5, 10)
PRECISION_RECALL_K = (1, 3, 5, 10)
MRR_K, NDCG_K, MAP_K = 10, 10, 100
MAX_K = max(MAP_K, *ACCURACY_K, *PRECISION_RECALL_K)  # ranks each query needs scored

HEADLINE = f"ndcg@{NDCG_K}"
# Index precisions scored at every dimension (retrieval.quantization), in report order.
PRECISIONS = ("float32", "int8", "ubinary")
LABELLED = "labelled_"  # key prefix of the figures against the labelled passages only
HYBRID = "hybrid_"  # key prefix of BM25 + dense reciprocal rank fusion
METRIC_NAMES = (
    (HEADLINE, f"mrr@{MRR_K}", f"map@{MAP_K}")
    + tuple(
        f"{m}@{k}"
        for m, ks in (("accuracy", ACCURACY_K), ("precision", PRECISION_RECALL_K))
        for k in ks
    )
    + tuple(f"recall@{k}" for k in PRECISION_RECALL_K)
)


def key(dim: int, metric: str, prefix: str = "") -> str:
    """The flat key of a metric at one dimension: ``dim_<d>_<metric>``, e.g.
    ``dim_128_ndcg@10``; ``prefix`` marks a variant such as ``labelled_``."""
    return f"{prefix}dim_{dim}_{metric}"
