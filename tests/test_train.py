"""train's pure parts: column order and precision choice."""

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


def test_pick_negatives_skips_passages_relevant_to_the_question():
    relevant = {"q1": {"p1", "p2"}, "q2": {"p3"}}
    mined = [
        {"anchor": "q1", "positive": "p1", "negative_1": "p2", "negative_2": "p4"},
        {"anchor": "q2", "positive": "p3", "negative_1": "p3", "negative_2": None},
    ]
    assert train.pick_negatives(mined, 2, relevant) == [
        {"anchor": "q1", "positive": "p1", "negative": "p4"}  # p2 answers q1 too: not a negative
    ]


def test_mined_negatives_come_from_train_and_are_never_relevant(tiny_model_dir):
    import dataclasses

    from sentence_transformers import SentenceTransformer

    from embedtune import params
    from tests.tiny import toy_rows

    p = params.load("params.yaml")
    hn = dataclasses.replace(p.train.hard_negatives, enabled=True, relative_margin=0.0)
    p = dataclasses.replace(p, train=dataclasses.replace(p.train, hard_negatives=hn))
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in toy_rows(12, 3)]
    # One question asked of two passages: the other passage must never be its negative.
    rows.append({"anchor": rows[0]["anchor"], "positive": rows[3]["positive"]})
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    mined = train.mine_negatives(model, rows, p)
    assert len(mined) >= len(rows) // 2
    relevant = train.relevant_texts(rows)
    passages = {r["positive"] for r in rows}
    for r in mined:
        assert r["negative"] in passages
        assert r["negative"] not in relevant[r["anchor"]]
    assert list(train.training_pairs(mined, "anchor_positive")) == [
        "anchor",
        "positive",
        "negative",
    ]
