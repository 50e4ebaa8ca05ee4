"""Exports give the PyTorch model's embeddings through SentenceTransformer's interface,
load with one call, and pool and normalise as the source folder says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedtune import export
from embedtune.errors import StageError
from embedtune.export import layout, runtime
from tests.tiny import (
    DOCS,
    EXACT_TOL,
    INT8_MAX_ABS,
    INT8_MIN_COSINE,
    QUERIES,
    load_st,
    max_diff,
    tiny_st_variant,
)


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_float_exports_give_the_pytorch_embeddings(exported, fmt):
    model_dir, out = exported
    model, enc = load_st(model_dir), export.load_encoder(out, fmt)
    for method in ("encode_query", "encode_document"):
        texts = QUERIES if method == "encode_query" else DOCS
        for prompt in (None, "", "hearing "):  # None: the model's own prompt for the method
            ref = getattr(model, method)(texts, prompt=prompt, batch_size=2)
            got = getattr(enc, method)(texts, prompt=prompt, batch_size=2)
            assert got.shape == ref.shape == (3, 32)
            assert max_diff(got, ref) < EXACT_TOL, (method, prompt)
    # The prompts do reach the graph: without them the embeddings differ.
    plain = enc.encode_query(QUERIES, prompt="")
    assert max_diff(plain, enc.encode_query(QUERIES)) > 1e-3


def test_int8_export_stays_close(exported):
    model_dir, out = exported
    ref = load_st(model_dir).encode_document(DOCS)
    got = export.load_encoder(out, "onnx_int8").encode_document(DOCS)
    assert max_diff(got, ref) < INT8_MAX_ABS
    assert (got * ref).sum(axis=1).min() > INT8_MIN_COSINE
    assert (out / export.FILES["onnx_int8"]).stat().st_size < (out / "model.onnx").stat().st_size


def test_truncation_at_max_seq_length(tmp_path, exported):
    model_dir, out = exported
    model = load_st(model_dir)
    model.max_seq_length = 8
    short = tmp_path / "short"
    export.export_model(model, model_dir, short, ["onnx"], opset=18)
    long = [" ".join(["court"] * 50), "appeal " * 30]
    got = export.load_encoder(short, "onnx").encode_document(long, prompt="")
    assert max_diff(got, model.encode_document(long, prompt="")) < EXACT_TOL
    assert json.loads((short / layout.CONFIG).read_text())["max_seq_length"] == 8


def test_one_call_loads_an_export_like_a_sentence_transformer(exported):
    import torch

    _, out = exported
    enc = export.load_encoder(out, "onnx")
    assert enc.get_embedding_dimension() == 32
    one = enc.encode_query("court appeal")
    assert one.shape == (32,)
    t = enc.encode_document(DOCS, convert_to_tensor=True, show_progress_bar=True)
    assert isinstance(t, torch.Tensor) and t.shape == (3, 32)
    assert np.allclose(np.linalg.norm(t.numpy(), axis=1), 1, atol=1e-5)
    assert enc.encode_document(DOCS, truncate_dim=8).shape == (3, 8)
    with pytest.raises(StageError, match="format 'tflite'"):
        export.load_encoder(out, "tflite")


def test_a_format_not_exported_is_named(tmp_path, exported):
    model_dir, _ = exported
    export.export_model(load_st(model_dir), model_dir, tmp_path / "e", ["onnx_int8"], opset=18)
    assert not (tmp_path / "e" / "model.onnx").exists()
    with pytest.raises(StageError, match="'openvino' was not exported .*onnx_int8"):
        export.load_encoder(tmp_path / "e", "openvino")
    with pytest.raises(StageError, match="not an export folder"):
        export.load_encoder(tmp_path, "onnx")


@pytest.mark.parametrize(("pooling", "normalize"), [("cls", False), ("max", True)])
def test_other_poolings_match_pytorch(tmp_path, tiny_model_dir, pooling, normalize):
    model_dir = tiny_st_variant(tmp_path, pooling, normalize, base=tiny_model_dir)
    model = load_st(model_dir)
    export.export_model(model, model_dir, tmp_path / "e", ["onnx"], opset=18)
    enc = export.load_encoder(tmp_path / "e", "onnx")
    assert max_diff(enc.encode_document(DOCS), model.encode_document(DOCS)) < EXACT_TOL


def test_pooling_normalises_like_sentence_transformers_and_keeps_a_zero_row_zero():
    import torch

    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(3, 4, 6)).astype(np.float32)
    tokens[1] = 0  # e.g. an all-padding row: normalised it must stay 0, not NaN
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    got = runtime.pool(tokens, mask, "mean", normalize=True)
    assert np.isfinite(got).all() and not got[1].any()
    mean = (tokens * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    ref = torch.nn.functional.normalize(torch.from_numpy(mean), dim=-1).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-6)
    raw = runtime.pool(tokens, mask, "mean", normalize=False)
    np.testing.assert_allclose(raw, mean, atol=1e-6)


def test_openvino_telemetry_is_declined_without_touching_the_home_folder(tmp_path, monkeypatch):
    checker = pytest.importorskip("openvino_telemetry.utils.opt_in_checker")
    monkeypatch.setenv("HOME", str(tmp_path))  # no consent file there either way
    runtime.decline_openvino_telemetry()
    result = checker.OptInChecker().check(enable_opt_in_dialog=False)
    assert result == checker.ConsentCheckResult.DECLINED
    assert list(tmp_path.iterdir()) == []
