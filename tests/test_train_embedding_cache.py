"""The train stage keeps the chosen checkpoint's corpus embeddings from its dev evaluation,
and they are the very rows the saved model gives when a later stage loads it: evaluate and
export read them instead of encoding the knowledge base again."""

from __future__ import annotations

import numpy as np

from embedtune import config, models
from embedtune.retrieval import embedding_cache, evaluation, search
from stages import train
from tests.tiny import toy_rows


def test_the_kept_rows_are_bit_for_bit_what_the_saved_model_encodes(tmp_path, tiny_model_dir):
    conf = config.load("params.yaml")
    common = config.replace(conf.common, dims=[32, 16], max_seq_length=64, eval_batch_size=4)
    conf = config.replace(
        conf,
        common=common,
        train=config.replace(
            conf.train, best_metric="eval_dim_16_cosine_ndcg@10", batch_size=8, epochs=2
        ),
    )
    rows = [{"anchor": r["question"], "positive": r["text"]} for r in toy_rows(12, 3)]
    passages = list(dict.fromkeys(r["positive"] for r in rows)) + ["an unlabelled passage"]
    dev = search.IRData(
        {str(i): t for i, t in enumerate(passages)},
        {f"q{i}": r["anchor"] for i, r in enumerate(rows[:4])},
        {f"q{i}": {str(passages.index(r["positive"]))} for i, r in enumerate(rows[:4])},
    )
    # As the stage loads it: attention dropout off for training, put back before saving.
    model, replaced = models.load_for_training(tiny_model_dir, common, 0.0)
    tuned, corpus = train.train(model, rows, dev, conf, tmp_path / "ckpt", None)
    assert corpus is not None and corpus.shape == (len(passages), 32)
    models.restore_config(tuned, replaced)
    tuned.save(str(tmp_path / "out"))
    train.save_corpus_embeddings(tmp_path / "emb", tmp_path / "out", dev, corpus, common)

    reloaded = models.load_model(tmp_path / "out", common)
    again = search.encode(reloaded, passages, "", common.eval_batch_size, document=True)
    assert np.array_equal(again.numpy(), corpus)  # bit for bit, not merely close

    _, c_emb, name = evaluation.encode_test(
        reloaded, tmp_path / "out", dev, common, tmp_path / "emb"
    )
    assert name == "torch-cpu" and np.array_equal(c_emb.numpy(), corpus)


def test_a_run_without_the_rows_leaves_an_empty_store(tmp_path, tiny_model_dir):
    common = config.load("params.yaml").common
    dev = search.IRData({"a": "jury verdict"}, {"q": "verdict"}, {"q": {"a"}})
    train.save_corpus_embeddings(tmp_path / "emb", tiny_model_dir, dev, None, common)
    stored, why = embedding_cache.lookup(
        tmp_path / "emb", embedding_cache.identity(tiny_model_dir, common), dev.corpus
    )
    assert stored is None and "resumed" in why
