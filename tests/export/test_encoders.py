"""The encoder switch: PyTorch unless an exported graph gives its embeddings (within the
tolerance) faster; a graph that differs is never used."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from embedtune import config
from embedtune.errors import StageError
from embedtune.export import encoders
from tests.tiny import load_st, toy_rows

TEXTS = [r["text"] for r in toy_rows(40, 3)]


def common_with(**encoder) -> config.Common:
    common = config.load("params.yaml").common
    common = config.replace(common, dims=[32, 16], max_seq_length=64, eval_batch_size=8)
    return config.replace(common, encoder=config.replace(common.encoder, **encoder))


@pytest.fixture
def model_dir(tiny_model_dir):
    return tiny_model_dir


def test_probe_texts_spread_over_the_list_and_are_stable():
    texts = [f"t{i}" for i in range(100)]
    probe = encoders.probe_texts(texts, 4)
    assert probe == ["t0", "t25", "t50", "t75"] == encoders.probe_texts(texts, 4)
    assert encoders.probe_texts(texts[:3], 4) == texts[:3]


def test_torch_is_used_as_asked_and_nothing_is_exported(model_dir, monkeypatch):
    monkeypatch.setattr(encoders, "export_model", lambda *a: pytest.fail("exported"))
    model = load_st(model_dir)
    choice = encoders.choose(model, model_dir, TEXTS, common_with(backend="torch"))
    assert choice.encoder is model and choice.name == "torch-cpu"


def test_auto_skips_the_export_when_pytorch_would_be_quick(model_dir, monkeypatch):
    monkeypatch.setattr(encoders, "export_model", lambda *a: pytest.fail("exported"))
    model = load_st(model_dir)
    choice = encoders.choose(model, model_dir, TEXTS, common_with(min_seconds=1e9))
    assert choice.encoder is model and "nothing is exported" in choice.reason


def test_auto_keeps_a_graph_only_if_it_matches_pytorch(model_dir):
    model = load_st(model_dir)
    common = common_with(min_seconds=0.0)
    choice = encoders.choose(model, model_dir, TEXTS, common)
    assert choice.name in ("torch-cpu", "onnx", "openvino")
    for name in ("torch-cpu", "onnx", "openvino"):  # every candidate was timed
        assert name in choice.reason
    got = np.asarray(choice.encoder.encode_document(TEXTS, batch_size=8))
    want = model.encode_document(TEXTS, batch_size=8)
    assert np.abs(got - want).max() <= common.encoder.tolerance


class Skewed:
    """An export whose embeddings are off by 1e-3: what a broken graph would give."""

    def __init__(self, encoder):
        self.encoder = encoder

    def encode_document(self, texts, **kwargs):
        return self.encoder.encode_document(texts, **kwargs) + 1e-3


def test_auto_falls_back_to_pytorch_with_a_warning_when_no_graph_matches(
    model_dir, monkeypatch, caplog
):
    load = encoders.load_encoder
    monkeypatch.setattr(encoders, "load_encoder", lambda folder, fmt: Skewed(load(folder, fmt)))
    model = load_st(model_dir)
    with caplog.at_level(logging.WARNING, logger=encoders.__name__):
        choice = encoders.choose(model, model_dir, TEXTS, common_with(min_seconds=0.0))
    assert choice.encoder is model and choice.name == "torch-cpu"
    assert "no export matches PyTorch" in caplog.text and "1.0e-03" in caplog.text


def test_an_explicit_graph_that_differs_is_an_error(model_dir, monkeypatch):
    load = encoders.load_encoder
    monkeypatch.setattr(encoders, "load_encoder", lambda folder, fmt: Skewed(load(folder, fmt)))
    with pytest.raises(StageError, match="onnx does not give PyTorch's embeddings"):
        encoders.choose(load_st(model_dir), model_dir, TEXTS, common_with(backend="onnx"))


def test_an_explicit_graph_is_used_when_it_matches(model_dir):
    model = load_st(model_dir)
    choice = encoders.choose(model, model_dir, TEXTS, common_with(backend="openvino"))
    assert choice.name == "openvino"


def test_an_exported_graph_cannot_run_in_several_processes(model_dir):
    with pytest.raises(StageError, match="common.encoder.backend"):
        encoders.choose(
            load_st(model_dir), model_dir, TEXTS, common_with(backend="onnx", processes=2)
        )


def test_several_processes_give_pytorchs_embeddings(model_dir):
    model = load_st(model_dir)
    choice = encoders.choose(model, model_dir, TEXTS, common_with(processes=2))
    assert choice.name == "torch-cpu-x2"
    try:
        got = choice.encoder.encode_document(TEXTS, batch_size=8)
    finally:
        choice.encoder.close()
    want = model.encode_document(TEXTS, batch_size=8)
    assert np.abs(np.asarray(got) - want).max() <= 1e-5
