"""embedtune.training.model_card: the saved model's README carries its provenance, licence, the
protocol and the test metrics at every dimension, written by sentence-transformers."""

from __future__ import annotations

from embedtune import config
from embedtune.retrieval import search
from embedtune.training import model_card
from tests.tiny import toy_rows

BASE_README = """---
language: en
license: apache-2.0
library_name: sentence-transformers
---
# base

    model = SentenceTransformer('someorg/base-model')
"""


def test_base_model_facts_from_a_packaged_card(tmp_path):
    (tmp_path / "README.md").write_text(BASE_README)
    facts = model_card.base_model_facts(tmp_path, "package some_pkg")
    assert facts == {
        "id": "someorg/base-model",
        "revision": None,
        "license": "apache-2.0",
        "language": "en",
    }


def test_a_hub_label_gives_id_and_commit_even_without_a_card(tmp_path):
    facts = model_card.base_model_facts(tmp_path, "hub org/name@" + "a" * 40)
    assert facts["id"] == "org/name" and facts["revision"] == "a" * 40
    assert facts["license"] is None


def test_the_saved_readme_holds_test_metrics_and_provenance(tmp_path, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    from stages import train

    conf = config.load("params.yaml")
    conf = config.replace(
        conf,
        common=config.replace(conf.common, dims=[32, 16], max_seq_length=64),
        train=config.replace(
            conf.train, best_metric="eval_dim_16_cosine_ndcg@10", batch_size=4, epochs=1
        ),
    )
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in toy_rows(6, 2)]
    passages = sorted({r["positive"] for r in rows})
    data = search.IRData(
        {str(i): t for i, t in enumerate(passages)},
        {f"q{i}": r["anchor"] for i, r in enumerate(rows)},
        {f"q{i}": {str(passages.index(r["positive"]))} for i, r in enumerate(rows)},
    )
    base = tmp_path / "base"
    base.mkdir()
    (base / "README.md").write_text(BASE_README)
    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    tuned, _ = train.train(model, rows, data, conf, tmp_path / "ckpt", None)
    source = {"data": "toy/pairs.csv", "model": "package some_pkg"}
    scores = model_card.fill(tuned, conf, source, base, len(rows), data)
    tuned.save(str(tmp_path / "out"))
    card = (tmp_path / "out" / "README.md").read_text()
    assert "license: apache-2.0" in card
    assert "someorg/base-model" in card
    assert f"toy/pairs.csv ({len(rows)} training question-passage pairs)" in card
    assert "the checkpoint was chosen on the dev split" in card
    assert "MatryoshkaLoss" in card
    for d in (32, 16):
        metric = f"dim_{d}_cosine_ndcg@10"
        assert metric in card
        assert f"{scores[metric]:.4f}" in card
