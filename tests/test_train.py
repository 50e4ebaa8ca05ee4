"""train's own parts: column order, precision choice and the configured trainer."""

from __future__ import annotations

import pytest

from embedtune.errors import StageError
from stages import train

ROWS = [{"anchor": "q", "positive": "p"}]


def test_anchor_positive_is_the_default_order():
    assert list(train.training_pairs(ROWS, "anchor_positive")) == ["anchor", "positive"]


def test_reference_order_puts_the_chunk_first():
    assert list(train.training_pairs(ROWS, "positive_anchor")) == ["positive", "anchor"]


@pytest.mark.parametrize(
    ("choice", "cuda", "bf16", "expect"),
    [
        ("auto", False, False, {"bf16": False, "fp16": False, "optim": "adamw_torch"}),
        ("auto", True, True, {"bf16": True, "tf32": True, "optim": "adamw_torch_fused"}),
        ("auto", True, False, {"fp16": True, "bf16": False}),
        ("fp32", True, True, {"bf16": False, "fp16": False}),
    ],
)
def test_precision_follows_the_device(choice, cuda, bf16, expect):
    got = train.precision_settings(choice, cuda, bf16)
    assert {k: got[k] for k in expect} == expect


@pytest.mark.parametrize(
    ("choice", "cuda", "bf16"),
    [("bf16", False, False), ("fp16", False, False), ("bf16", True, False)],
)
def test_impossible_precision_is_a_params_error(choice, cuda, bf16):
    with pytest.raises(StageError, match="train.precision"):
        train.precision_settings(choice, cuda, bf16)


def test_prompts_reach_the_training_batches(tmp_path, tiny_model_dir):
    import dataclasses

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


def test_a_mined_negative_comes_last_in_either_order():
    rows = [{"anchor": "q", "positive": "p", "negative": "n"}]
    assert list(train.training_pairs(rows, "anchor_positive")) == ["anchor", "positive", "negative"]
    assert list(train.training_pairs(rows, "positive_anchor")) == ["positive", "anchor", "negative"]
