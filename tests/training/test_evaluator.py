"""The trainer's evaluator: one pass, every dimension, under the names the trainer's
``metric_for_best_model`` refers to."""

from __future__ import annotations

import pytest

from embedtune import config
from embedtune.retrieval import search
from embedtune.training.evaluator import MatryoshkaIR
from tests.tiny import toy_rows

# The metric names of sentence-transformers' InformationRetrievalEvaluator.
METRICS = [
    *(f"{m}@{k}" for m in ("accuracy", "precision", "recall") for k in (1, 3, 5, 10)),
    "ndcg@10",
    "mrr@10",
    "map@100",
]


def _data():
    rows = toy_rows(8, 2, seed=1)
    corpus = {str(r["global_chunk_id"]): r["text"] for r in rows}
    queries = {f"q{i}": r["question"] for i, r in enumerate(rows)}
    relevant = {f"q{i}": {str(r["global_chunk_id"])} for i, r in enumerate(rows)}
    return search.IRData(corpus, queries, relevant)


def test_every_dimension_is_scored_under_the_trainers_names(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    common = config.replace(
        config.load("params.yaml").common, dims=[32, 16, 8], query_prompt="court "
    )
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    data = _data()
    evaluator = MatryoshkaIR(data, common, "dim_16_cosine_ndcg@10")
    got = evaluator(model)
    assert set(got) == {f"dim_{d}_cosine_{m}" for d in (32, 16, 8) for m in METRICS}
    assert evaluator.primary_metric == "dim_16_cosine_ndcg@10"
    assert evaluator.greater_is_better
    expected = search.evaluate_model(
        model, data, [32, 16, 8], common.eval_batch_size, query_prompt="court "
    )
    for d, (metrics, _) in expected.items():
        for name, value in metrics.items():
            assert got[f"dim_{d}_cosine_{name}"] == pytest.approx(value, abs=1e-12)
