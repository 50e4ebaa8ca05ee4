"""train with its guards attached: a planted NaN stops a real run; a clean run passes every
guard. The guards themselves are unit-tested in test_guards.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from embedtune import params, retrieval
from embedtune.checkpoints import COMPLETE
from embedtune.errors import StageError
from embedtune.guards import check_embeddings
from stages import train
from tests.tiny import toy_rows


def _setup(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    p = params.load("params.yaml")
    p = dataclasses.replace(
        p,
        common=dataclasses.replace(p.common, dims=[32, 16], max_seq_length=64),
        train=dataclasses.replace(
            p.train,
            best_metric="eval_dim_16_cosine_ndcg@10",
            batch_size=8,
            epochs=1,
            logging_steps=1,
        ),
    )
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in toy_rows(10, 3)]
    dev = retrieval.IRData(
        {str(i): r["positive"] for i, r in enumerate(rows[::3])},
        {"q": rows[0]["anchor"]},
        {"q": {"0"}},
    )
    return SentenceTransformer(str(tiny_model_dir), device="cpu"), rows, dev, p


def test_a_planted_nan_stops_training(tmp_path, tiny_model_dir):
    model, rows, dev, p = _setup(tiny_model_dir)
    with torch.no_grad():
        model[0].auto_model.embeddings.LayerNorm.weight[0] = float("nan")
    with pytest.raises(StageError, match="non-finite"):
        train.train(model, rows, dev, p, tmp_path / "ckpt", None)


def test_a_clean_run_passes_every_guard(tmp_path, tiny_model_dir):
    model, rows, dev, p = _setup(tiny_model_dir)
    trained = train.train(model, rows, dev, p, tmp_path / "ckpt", None)
    assert (tmp_path / "ckpt" / "live").is_dir()
    assert list((tmp_path / "ckpt").glob(f"checkpoint-*/{COMPLETE}"))  # the guard was attached
    check_embeddings(trained, [r["anchor"] for r in rows])
