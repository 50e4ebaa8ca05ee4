"""train: column order, the configured trainer, and real (tiny) runs with the guards attached:
a planted NaN stops training, a clean run passes every guard, a guided loss trains. The
guards themselves are unit-tested in test_guards.py."""

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


def test_prompts_reach_the_training_batches(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    from embedtune import params, retrieval

    p = params.load("params.yaml")
    common = dataclasses.replace(
        p.common, dims=[32, 16], query_prompt="court ", document_prompt="camera "
    )
    p = dataclasses.replace(
        p,
        common=common,
        train=dataclasses.replace(p.train, best_metric="eval_dim_16_cosine_ndcg@10", batch_size=2),
    )
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    rows = [
        {"anchor": "appeal motion", "positive": "jury verdict"},
        {"anchor": "patent inventor", "positive": "privacy consent"},
    ]
    dev = retrieval.IRData({"c": "jury verdict"}, {"q": "appeal"}, {"q": {"c"}})
    trainer = train.build_trainer(model, rows, dev, p, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    decode = model.tokenizer.decode
    anchors = [decode(ids, skip_special_tokens=True) for ids in batch["anchor_input_ids"]]
    positives = [decode(ids, skip_special_tokens=True) for ids in batch["positive_input_ids"]]
    assert all(a.startswith("court ") for a in anchors), anchors
    assert all(x.startswith("camera ") for x in positives), positives


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


def test_a_guided_loss_trains_with_the_base_model_as_guide(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model, rows, dev, p = _setup(tiny_model_dir)
    p = dataclasses.replace(p, train=dataclasses.replace(p.train, loss="gist"))
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    trained = train.train(model, rows, dev, p, tmp_path / "ckpt", None, guide=guide)
    check_embeddings(trained, [r["anchor"] for r in rows])
    # The guide is consulted, never trained.
    assert all(torch.equal(before[k], v) for k, v in guide.state_dict().items())
    assert any(
        not torch.equal(before[k], v) for k, v in trained.state_dict().items() if k in before
    )


def test_gradient_checkpointing_trains_the_same_weights(tmp_path, tiny_model_dir):
    """Activations recomputed in the backward pass (dropout replayed from the saved RNG
    state) give the weights of a run that kept them."""
    weights = {}
    for on in (False, True):
        model, rows, dev, p = _setup(tiny_model_dir)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        p = dataclasses.replace(p, train=dataclasses.replace(p.train, gradient_checkpointing=on))
        trainer = train.build_trainer(model, rows, dev, p, tmp_path / f"gc{on}")
        assert trainer.args.gradient_checkpointing is on
        trainer.train()
        assert model[0].auto_model.is_activation_checkpointing is on
        weights[on] = {k: v.clone() for k, v in model.state_dict().items()}
        assert any(not torch.equal(start[k], v) for k, v in weights[on].items()), "not trained"
    for k in weights[False]:
        torch.testing.assert_close(weights[True][k], weights[False][k], rtol=0, atol=1e-6)
