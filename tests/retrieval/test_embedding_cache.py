"""embedding_cache: the baseline's corpus rows, found again only under the same identity."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from embedtune import config
from embedtune.retrieval import embedding_cache

COMMON = config.load("params.yaml").common


class CountingModel:
    """A SentenceTransformer that remembers which texts it was asked to encode."""

    def __init__(self, model):
        self.model, self.encoded = model, []

    def get_embedding_dimension(self):
        return self.model.get_embedding_dimension()

    def encode_document(self, texts, **kwargs):
        self.encoded.extend(texts)
        return self.model.encode_document(texts, **kwargs)


@pytest.fixture
def model(tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_dir), device="cpu")


def test_identity_follows_the_model_bytes_not_the_place(tiny_model_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    identity = embedding_cache.identity(tiny_model_dir, COMMON)
    assert embedding_cache.identity(copy, COMMON) == identity
    longer = config.replace(COMMON, max_seq_length=COMMON.max_seq_length + 1)
    assert embedding_cache.identity(copy, longer) != identity
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    assert embedding_cache.identity(copy, COMMON)["model"] != identity["model"]


def test_rows_come_back_only_under_the_same_identity(model, tiny_model_dir, tmp_path):
    corpus = {"a": "jury verdict", "b": "patent claim", "c": "privacy consent"}
    emb = model.encode_document(list(corpus.values()), convert_to_tensor=True)
    identity = embedding_cache.identity(tiny_model_dir, COMMON)
    embedding_cache.save(tmp_path / "emb", list(corpus), emb, identity)

    stored, why = embedding_cache.lookup(tmp_path / "emb", identity, corpus)
    assert why == "" and stored.row_of == {
        "jury verdict": 0,
        "patent claim": 1,
        "privacy consent": 2,
    }
    np.testing.assert_array_equal(stored.matrix, emb.numpy())

    other = embedding_cache.identity(
        tiny_model_dir, config.replace(COMMON, document_prompt="passage: ")
    )
    assert embedding_cache.lookup(tmp_path / "emb", other, corpus)[0] is None
    missing, why = embedding_cache.lookup(tmp_path / "nothing", identity, corpus)
    assert missing is None and "no stored embeddings" in why


def test_only_texts_without_a_stored_row_are_encoded(model, tiny_model_dir, tmp_path):
    corpus = {"a": "jury verdict", "b": "patent claim"}
    emb = model.encode_document(list(corpus.values()), convert_to_tensor=True)
    identity = embedding_cache.identity(tiny_model_dir, COMMON)
    embedding_cache.save(tmp_path / "emb", list(corpus), emb, identity)
    stored, _ = embedding_cache.lookup(tmp_path / "emb", identity, corpus)

    counting = CountingModel(model)
    texts = ["patent claim", "appeal motion", "jury verdict"]
    matrix, encoded = embedding_cache.for_texts(counting, texts, stored, COMMON)
    assert (encoded, counting.encoded) == (1, ["appeal motion"])
    fresh = model.encode_document(texts)
    np.testing.assert_allclose(matrix, fresh, atol=1e-5)


def test_save_refuses_ids_that_do_not_match_the_rows(tmp_path):
    with pytest.raises(ValueError, match="2 ids for 3"):
        embedding_cache.save(tmp_path / "e", ["a", "b"], np.zeros((3, 4)), {})
    assert not (tmp_path / "e").exists()


def test_identity_names_batch_size_and_encoder(tiny_model_dir):
    identity = embedding_cache.identity(tiny_model_dir, COMMON)
    assert identity["encoder"] == "torch-cpu"  # PyTorch on this machine's device by default
    other_batch = config.replace(COMMON, eval_batch_size=COMMON.eval_batch_size + 1)
    assert embedding_cache.identity(tiny_model_dir, other_batch) != identity
    assert embedding_cache.identity(tiny_model_dir, COMMON, "openvino") != identity


def test_rows_of_another_encoder_serve_only_who_accepts_any(model, tiny_model_dir, tmp_path):
    corpus = {"a": "jury verdict"}
    emb = model.encode_document(list(corpus.values()), convert_to_tensor=True)
    made = embedding_cache.identity(tiny_model_dir, COMMON, "openvino")
    embedding_cache.save(tmp_path / "emb", list(corpus), emb, made)
    torch_identity = embedding_cache.identity(tiny_model_dir, COMMON)
    assert embedding_cache.lookup(tmp_path / "emb", torch_identity, corpus)[0] is None
    stored, _ = embedding_cache.lookup(tmp_path / "emb", torch_identity, corpus, any_encoder=True)
    assert stored is not None and stored.row_of == {"jury verdict": 0}
    # ... but never rows of another model, whatever the encoder.
    longer = embedding_cache.identity(
        tiny_model_dir, config.replace(COMMON, max_seq_length=COMMON.max_seq_length + 1)
    )
    assert embedding_cache.lookup(tmp_path / "emb", longer, corpus, any_encoder=True)[0] is None


def test_an_empty_store_says_why_it_has_no_rows(tiny_model_dir, tmp_path):
    embedding_cache.save_none(tmp_path / "emb", "resumed after the evaluation")
    identity = embedding_cache.identity(tiny_model_dir, COMMON)
    stored, why = embedding_cache.lookup(tmp_path / "emb", identity, {"a": "x"})
    assert stored is None and "resumed after the evaluation" in why


def test_evaluation_reads_stored_rows_and_encodes_only_the_queries(model, tiny_model_dir, tmp_path):
    from embedtune.retrieval import evaluation, search

    data = search.IRData(
        {"a": "jury verdict", "b": "patent claim", "c": "privacy consent"},
        {"q1": "appeal verdict", "q2": "patent"},
        {"q1": {"a"}, "q2": {"b"}},
    )
    q_ref, c_ref = search.encode_data(model, data, COMMON.eval_batch_size, "", "")
    identity = embedding_cache.identity(tiny_model_dir, COMMON)
    embedding_cache.save(tmp_path / "emb", list(data.corpus), c_ref, identity)

    counting = CountingModel(model)
    counting.encode_query = lambda texts, **kw: model.encode_query(texts, **kw)
    q, c, name = evaluation.encode_test(counting, tiny_model_dir, data, COMMON, tmp_path / "emb")
    assert counting.encoded == [] and name == "torch-cpu"  # no passage encoded again
    assert np.array_equal(c.numpy(), c_ref.numpy()) and np.array_equal(q.numpy(), q_ref.numpy())

    # A store of another model is passed over: every passage is encoded.
    other = config.replace(COMMON, document_prompt="passage: ")
    evaluation.encode_test(counting, tiny_model_dir, data, other, tmp_path / "emb")
    assert sorted(counting.encoded) == sorted(data.corpus.values())
