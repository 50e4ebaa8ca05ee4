"""The guards: a non-finite loss or gradient norm stops training, a saved checkpoint is
marked complete, and a final model with the wrong or broken weights is refused."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from embedtune.errors import StageError
from embedtune.training.checkpoints import COMPLETE
from embedtune.training.guards import Guard, check_best_weights, check_embeddings


def _on_log(logs, step=7):
    Guard().on_log(SimpleNamespace(), SimpleNamespace(global_step=step), None, logs=logs)


@pytest.mark.parametrize(
    ("logs", "message"),
    [
        ({"loss": float("nan"), "grad_norm": 1.0}, r"non-finite loss \(nan\) at step 7"),
        ({"loss": 0.5, "grad_norm": float("inf")}, r"non-finite grad_norm \(inf\) at step 7"),
    ],
)
def test_a_non_finite_log_stops_training(logs, message):
    with pytest.raises(StageError, match=message):
        _on_log(logs)


@pytest.mark.parametrize("logs", [None, {}, {"loss": 0.5, "grad_norm": 2.0}, {"eval_loss": 1.0}])
def test_finite_logs_pass(logs):
    _on_log(logs)  # raises on failure


@pytest.mark.parametrize(("exists", "main", "marked"), [(True, True, True), (True, False, False)])
def test_only_the_main_process_marks_a_saved_checkpoint(tmp_path, exists, main, marked):
    ckpt = tmp_path / "checkpoint-3"
    ckpt.mkdir()
    state = SimpleNamespace(global_step=3, is_world_process_zero=main)
    Guard().on_save(SimpleNamespace(output_dir=str(tmp_path)), state, None)
    assert (ckpt / COMPLETE).is_file() == marked


def test_an_unsaved_checkpoint_is_not_created(tmp_path):
    state = SimpleNamespace(global_step=3, is_world_process_zero=True)
    Guard().on_save(SimpleNamespace(output_dir=str(tmp_path)), state, None)
    assert not (tmp_path / "checkpoint-3").exists()


def test_a_failed_best_model_load_is_caught(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    model.save(str(tmp_path / "best"))
    check_best_weights(model, tmp_path / "best")  # same weights: fine
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # the weights in memory are not the best ones
    with pytest.raises(StageError, match="not the best checkpoint"):
        check_best_weights(model, tmp_path / "best")


def test_a_best_checkpoint_without_weights_is_refused(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with pytest.raises(StageError, match="has no model.safetensors"):
        check_best_weights(model, tmp_path)


def test_collapsed_embeddings_are_refused(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    texts = ["court", "jury verdict", "patent"]
    check_embeddings(model, texts)  # the untouched model: fine
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
    with pytest.raises(StageError, match="same embedding"):
        check_embeddings(model, texts)


def test_non_finite_embeddings_are_refused(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with torch.no_grad():
        model[0].auto_model.embeddings.LayerNorm.weight[0] = float("nan")
    with pytest.raises(StageError, match="non-finite embeddings"):
        check_embeddings(model, ["court", "jury verdict"])
