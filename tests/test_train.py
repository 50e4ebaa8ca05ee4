"""train: column order, the configured trainer, and real (tiny) runs with the guards attached:
a planted NaN stops training, a clean run passes every guard, a guided loss trains. The
guards themselves are unit-tested in test_guards.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embedtune import config
from embedtune.errors import StageError
from embedtune.retrieval import search
from embedtune.training.checkpoints import COMPLETE
from embedtune.training.guards import check_embeddings
from stages import train
from tests.tiny import toy_rows


def test_prompts_reach_the_training_batches(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    from embedtune import config
    from embedtune.retrieval import search

    conf = config.load("params.yaml")
    common = config.replace(
        conf.common, dims=[32, 16], query_prompt="court ", document_prompt="camera "
    )
    conf = config.replace(
        conf,
        common=common,
        train=config.replace(conf.train, best_metric="eval_dim_16_cosine_ndcg@10", batch_size=2),
    )
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    rows = [
        {"anchor": "appeal motion", "positive": "jury verdict"},
        {"anchor": "patent inventor", "positive": "privacy consent"},
    ]
    dev = search.IRData({"c": "jury verdict"}, {"q": "appeal"}, {"q": {"c"}})
    trainer = train.build_trainer(model, rows, dev, conf, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    decode = model.tokenizer.decode
    anchors = [decode(ids, skip_special_tokens=True) for ids in batch["anchor_input_ids"]]
    positives = [decode(ids, skip_special_tokens=True) for ids in batch["positive_input_ids"]]
    assert all(a.startswith("court ") for a in anchors), anchors
    assert all(x.startswith("camera ") for x in positives), positives


def _setup(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    conf = config.load("params.yaml")
    conf = config.replace(
        conf,
        common=config.replace(conf.common, dims=[32, 16], max_seq_length=64),
        train=config.replace(
            conf.train,
            best_metric="eval_dim_16_cosine_ndcg@10",
            batch_size=8,
            epochs=1,
            logging_steps=1,
        ),
    )
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in toy_rows(10, 3)]
    dev = search.IRData(
        {str(i): r["positive"] for i, r in enumerate(rows[::3])},
        {"q": rows[0]["anchor"]},
        {"q": {"0"}},
    )
    return SentenceTransformer(str(tiny_model_dir), device="cpu"), rows, dev, conf


def test_a_planted_nan_stops_training(tmp_path, tiny_model_dir):
    model, rows, dev, conf = _setup(tiny_model_dir)
    with torch.no_grad():
        model[0].auto_model.embeddings.LayerNorm.weight[0] = float("nan")
    with pytest.raises(StageError, match="non-finite"):
        train.train(model, rows, dev, conf, tmp_path / "ckpt", None)


def test_a_clean_run_passes_every_guard(tmp_path, tiny_model_dir):
    model, rows, dev, conf = _setup(tiny_model_dir)
    trained, _ = train.train(model, rows, dev, conf, tmp_path / "ckpt", None)
    assert (tmp_path / "ckpt" / "live").is_dir()
    assert list((tmp_path / "ckpt").glob(f"checkpoint-*/{COMPLETE}"))  # the guard was attached
    check_embeddings(trained, [r["anchor"] for r in rows])


def test_a_guided_loss_trains_with_the_base_model_as_guide(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model, rows, dev, conf = _setup(tiny_model_dir)
    conf = config.replace(conf, train=config.replace(conf.train, loss="gist"))
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    before = {k: v.clone() for k, v in guide.state_dict().items()}
    trained, _ = train.train(model, rows, dev, conf, tmp_path / "ckpt", None, guide=guide)
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
        model, rows, dev, conf = _setup(tiny_model_dir)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        conf = config.replace(conf, train=config.replace(conf.train, gradient_checkpointing=on))
        trainer = train.build_trainer(model, rows, dev, conf, tmp_path / f"gc{on}")
        assert trainer.args.gradient_checkpointing is on
        trainer.train()
        assert model[0].auto_model.is_activation_checkpointing is on
        weights[on] = {k: v.clone() for k, v in model.state_dict().items()}
        assert any(not torch.equal(start[k], v) for k, v in weights[on].items()), "not trained"
    for k in weights[False]:
        torch.testing.assert_close(weights[True][k], weights[False][k], rtol=0, atol=1e-6)


def _attention_kernels(model) -> set[str]:
    """The scaled-dot-product attention kernels one training-mode step runs."""
    model.train()
    feats = model.preprocess(["a short text", "a longer text with more words in it"])
    with torch.profiler.profile() as prof:
        model(feats)["sentence_embedding"].sum().backward()
    return {e.key for e in prof.key_averages() if e.key.startswith("aten::_scaled_dot_product")}


def test_attention_dropout_zero_trains_on_the_fused_kernel_and_saves_the_base_config(
    tmp_path, tiny_model_dir
):
    """With the model's own attention dropout (0.1) training runs the unfused attention that
    keeps every attention matrix; at 0 it runs the fused CPU kernel. The saved config
    keeps the base model's value."""
    import json

    from embedtune import models

    common = config.replace(config.load("params.yaml").common, dims=[32, 8])
    own, replaced = models.load_for_training(tiny_model_dir, common, None)
    assert replaced == {}
    assert _attention_kernels(own) == {"aten::_scaled_dot_product_attention_math"}
    off, replaced = models.load_for_training(tiny_model_dir, common, 0.0)
    assert replaced == {"attention_probs_dropout_prob": 0.1}
    assert off[0].auto_model.config.attention_probs_dropout_prob == 0.0
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in _attention_kernels(off)
    models.restore_config(off, replaced)
    off.save(str(tmp_path / "saved"))
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["attention_probs_dropout_prob"] == 0.1


def test_attention_dropout_out_of_range_names_the_key(tmp_path):
    text = (
        Path("params.yaml")
        .read_text()
        .replace("attention_dropout: 0.0", "attention_dropout: 1.5", 1)
    )
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(StageError, match="train.attention_dropout"):
        config.load(tmp_path / "params.yaml")
