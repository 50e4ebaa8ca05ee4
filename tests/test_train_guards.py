"""train's guards: a planted NaN stops training; a failed best-model load is caught;
checkpoints from another run are discarded and half-written ones skipped."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from embedtune import params, retrieval
from embedtune.errors import StageError
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
    train.check_embeddings(trained, [r["anchor"] for r in rows])


def test_a_failed_best_model_load_is_caught(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.save(str(tmp_path / "best"))
    train.check_best_weights(model, tmp_path / "best")  # same weights: fine
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # the weights in memory are not the best ones
    with pytest.raises(StageError, match="not the best checkpoint"):
        train.check_best_weights(model, tmp_path / "best")


def test_collapsed_or_non_finite_embeddings_are_refused(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    with pytest.raises(StageError, match="same embedding"):
        train.check_embeddings(model, ["court", "jury verdict", "patent"])


def test_checkpoints_of_another_run_are_discarded(tmp_path):
    folder = tmp_path / "ckpt"
    (folder / "checkpoint-5").mkdir(parents=True)
    (folder / "checkpoint-5" / train.COMPLETE).write_text("ok")
    (folder / "fingerprint").write_text("old-run")
    assert train.prepare_checkpoints(folder, "new-run") is None
    assert not (folder / "checkpoint-5").exists()
    assert (folder / "fingerprint").read_text() == "new-run"


def test_half_written_checkpoints_are_skipped(tmp_path):
    folder = tmp_path / "ckpt"
    for step, complete in ((10, True), (20, True), (30, False)):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (folder / f"checkpoint-{step}" / train.COMPLETE).write_text("ok")
    (folder / "fingerprint").write_text("run")
    assert train.prepare_checkpoints(folder, "run") == folder / "checkpoint-20"


def test_fingerprint_follows_params_and_input_bytes(tmp_path):
    p = params.load("params.yaml")
    data = tmp_path / "train.jsonl"
    data.write_text("a\n")
    first = train.fingerprint(p, [data])
    assert first == train.fingerprint(p, [data])
    other = dataclasses.replace(p, train=dataclasses.replace(p.train, learning_rate=1.0))
    assert train.fingerprint(other, [data]) != first
    data.write_text("b\n")
    assert train.fingerprint(p, [data]) != first
