"""Exports of a tiny model give the PyTorch model's embeddings, load with one call, refuse what
they cannot reproduce, and the export stage writes its outputs whole or not at all."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from embedtune import cli, export, io
from embedtune.errors import StageError
from embedtune.export import exporter, layout, runtime
from tests.pipeline import tiny_params
from tests.tiny import build_tiny_model, toy_rows

# Float32 exports: the same arithmetic up to operator order (measured ~1e-7 here).
EXACT_TOL = 1e-5
# Dynamic int8 quantizes weights and activations: close, not equal (measured 2.4e-3 and
# cosine 0.99998 on the tiny model; 2.8e-2 and cosine 0.988 on MiniLM).
INT8_MAX_ABS = 0.02
INT8_MIN_COSINE = 0.999

QUERIES = ["court contract damages?", "privacy consent vendor", "appeal"]
DOCS = [" ".join(toy_rows()[i]["text"] for i in range(3)), "jury verdict ruling chunk7", "fee"]
QUERY_PROMPT, DOC_PROMPT = "claim notice ", "record report "  # words the tiny vocab knows


def _tiny_st(folder: Path, pooling: str = "mean", normalize: bool = True) -> Path:
    """The tests' tiny model re-saved with another pooling / without Normalize, and with
    default prompts, so that every option the encoder reads is exercised."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    base = SentenceTransformer(str(build_tiny_model(folder)), device="cpu")
    modules = [base[0], Pooling(base[0].get_embedding_dimension(), pooling)]
    modules += [Normalize()] if normalize else []
    model = SentenceTransformer(modules=modules, device="cpu")
    model.prompts = {"query": QUERY_PROMPT, "document": DOC_PROMPT}
    out = folder / f"st_{pooling}_{int(normalize)}"
    model.save(str(out))
    return out


def _load_st(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model folder, export folder) of the mean-pooled, normalised tiny model, all formats."""
    root = tmp_path_factory.mktemp("export")
    model_dir = _tiny_st(root)
    out = root / "export"
    export.export_model(_load_st(model_dir), model_dir, out, export.FORMATS, opset=18)
    return model_dir, out


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_float_exports_give_the_pytorch_embeddings(exported, fmt):
    model_dir, out = exported
    model, enc = _load_st(model_dir), export.load_encoder(out, fmt)
    for method in ("encode_query", "encode_document"):
        texts = QUERIES if method == "encode_query" else DOCS
        for prompt in (None, "", "hearing "):  # None: the model's own prompt for the method
            ref = getattr(model, method)(texts, prompt=prompt, batch_size=2)
            got = getattr(enc, method)(texts, prompt=prompt, batch_size=2)
            assert got.shape == ref.shape == (3, 32)
            assert _max_diff(got, ref) < EXACT_TOL, (method, prompt)
    # The prompts do reach the graph: without them the embeddings differ.
    plain = enc.encode_query(QUERIES, prompt="")
    assert _max_diff(plain, enc.encode_query(QUERIES)) > 1e-3


def test_int8_export_stays_close(exported):
    model_dir, out = exported
    ref = _load_st(model_dir).encode_document(DOCS)
    got = export.load_encoder(out, "onnx_int8").encode_document(DOCS)
    assert _max_diff(got, ref) < INT8_MAX_ABS
    assert (got * ref).sum(axis=1).min() > INT8_MIN_COSINE
    assert (out / export.FILES["onnx_int8"]).stat().st_size < (out / "model.onnx").stat().st_size


def test_truncation_at_max_seq_length(tmp_path, exported):
    model_dir, out = exported
    model = _load_st(model_dir)
    model.max_seq_length = 8
    short = tmp_path / "short"
    export.export_model(model, model_dir, short, ["onnx"], opset=18)
    long = [" ".join(["court"] * 50), "appeal " * 30]
    got = export.load_encoder(short, "onnx").encode_document(long, prompt="")
    assert _max_diff(got, model.encode_document(long, prompt="")) < EXACT_TOL
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
    export.export_model(_load_st(model_dir), model_dir, tmp_path / "e", ["onnx_int8"], opset=18)
    assert not (tmp_path / "e" / "model.onnx").exists()
    with pytest.raises(StageError, match="'openvino' was not exported .*onnx_int8"):
        export.load_encoder(tmp_path / "e", "openvino")
    with pytest.raises(StageError, match="not an export folder"):
        export.load_encoder(tmp_path, "onnx")


@pytest.mark.parametrize(("pooling", "normalize"), [("cls", False), ("max", True)])
def test_other_poolings_match_pytorch(tmp_path, pooling, normalize):
    model_dir = _tiny_st(tmp_path, pooling, normalize)
    model = _load_st(model_dir)
    export.export_model(model, model_dir, tmp_path / "e", ["onnx"], opset=18)
    enc = export.load_encoder(tmp_path / "e", "onnx")
    assert _max_diff(enc.encode_document(DOCS), model.encode_document(DOCS)) < EXACT_TOL


def test_unsupported_pooling_or_module_fails_clearly(tmp_path, exported):
    model_dir, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    pool_cfg = bad / "1_Pooling" / "config.json"
    cfg = json.loads(pool_cfg.read_text())
    cfg.pop("pooling_mode", None)
    for k in list(cfg):
        if k.startswith("pooling_mode_"):
            cfg.pop(k)
    pool_cfg.write_text(json.dumps({**cfg, "pooling_mode": "weightedmean"}))
    with pytest.raises(StageError, match=r"1_Pooling/config.json: pooling mode 'weightedmean'"):
        layout.read_encoder_config(bad, 64)
    out = tmp_path / "out"
    with pytest.raises(StageError, match="not supported"):
        export.export_model(_load_st(model_dir), bad, out, ["onnx"], opset=18)
    assert not out.exists()  # refused before anything is written

    modules = json.loads((bad / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "x.models.Dense"})
    (bad / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(StageError, match="module 'x.models.Dense' is not supported"):
        layout.read_encoder_config(bad, 64)


def test_a_folder_without_a_readable_modules_list_is_named(tmp_path):
    """The export reads modules.json through models.read_modules, as model loading does."""
    with pytest.raises(StageError, match="modules.json: not found"):
        layout.read_encoder_config(tmp_path, 64)
    (tmp_path / "modules.json").write_text("[{")
    with pytest.raises(StageError, match="modules.json: cannot read JSON"):
        layout.read_encoder_config(tmp_path, 64)
    (tmp_path / "modules.json").write_text('{"type": "x.Transformer"}')
    with pytest.raises(StageError, match="modules.json: not a list of modules"):
        layout.read_encoder_config(tmp_path, 64)


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


def test_legacy_pooling_flags_are_read():
    assert layout.pooling_mode({"pooling_mode_cls_token": True}, "cfg") == "cls"
    assert layout.pooling_mode({"pooling_mode_mean_tokens": True}, "cfg") == "mean"
    with pytest.raises(StageError, match="'cls\\+mean' is not supported"):
        layout.pooling_mode({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, "c")


# --- the stage -----------------------------------------------------------------------------


def _stage_inputs(tmp_path: Path, model_dir: Path) -> dict[str, Path]:
    """A build_ir_eval folder from the toy rows and a tiny params file."""
    rows = toy_rows(n_chunks=12, per_chunk=2)
    ir = tmp_path / "ir"
    ir.mkdir()
    chunks = {str(r["global_chunk_id"]): r["text"] for r in rows}
    io.write_jsonl(ir / "corpus.jsonl", [{"id": k, "text": v} for k, v in chunks.items()])
    queries = {f"q{i}": r["question"] for i, r in enumerate(rows)}
    rel = {f"q{i}": [str(r["global_chunk_id"])] for i, r in enumerate(rows)}
    io.write_json(ir / "test.json", {"queries": queries, "relevant_docs": rel})
    conf = tiny_params(model_dir, tmp_path / "unused.csv")
    conf["common"].update(query_prompt=QUERY_PROMPT, document_prompt=DOC_PROMPT)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(conf))
    return {"ir": ir, "params": tmp_path / "params.yaml", "model": model_dir}


def _argv(paths: dict[str, Path], tmp_path: Path) -> list[str]:
    out, metrics = tmp_path / "models" / "export", tmp_path / "m" / "export.json"
    return [
        "--params", str(paths["params"]), "--model", str(paths["model"]), "--ir", str(paths["ir"]),
        "--out", str(out), "--metrics", str(metrics),
    ]  # fmt: skip


def test_stage_writes_the_exports_and_their_metrics(tmp_path, exported, capsys):
    from stages import export as stage

    paths = _stage_inputs(tmp_path, exported[0])
    assert cli.run_stage(stage.main, _argv(paths, tmp_path)) == 0
    out = tmp_path / "models" / "export"
    for f in export.FORMATS:
        assert (out / export.FILES[f]).is_file()
    assert (out / "tokenizer.json").is_file() and (out / layout.CONFIG).is_file()
    scores = json.loads((tmp_path / "m" / "export.json").read_text())
    dims = [32, 16, 8]
    for d in dims:
        assert 0 <= scores[f"pytorch_dim_{d}_ndcg@10"] <= 1
        for f in ("onnx", "openvino"):
            assert abs(scores[f"{f}_dim_{d}_ndcg@10_change"]) <= 1e-4
        assert scores[f"onnx_int8_dim_{d}_ndcg@10_change"] == pytest.approx(
            scores[f"onnx_int8_dim_{d}_ndcg@10"] - scores[f"pytorch_dim_{d}_ndcg@10"], abs=2e-6
        )
    for f in ("onnx", "openvino"):
        assert scores[f"{f}_query_max_abs_diff"] < EXACT_TOL
        assert scores[f"{f}_document_max_abs_diff"] < EXACT_TOL
    assert 0 < scores["onnx_int8_query_max_abs_diff"] < INT8_MAX_ABS
    assert "onnx_int8" in capsys.readouterr().out  # the table


def test_parity_metrics_compare_each_format_with_pytorch():
    import torch

    from stages import export as stage

    def results(ndcg):
        return {8: ({"ndcg@10": ndcg, "mrr@10": 0.5}, {})}

    q, c = torch.zeros(2, 8), torch.ones(3, 8)
    reference = (results(0.5), q, c)
    scored = {"onnx": (results(0.5), q, c), "onnx_int8": (results(0.25), q + 0.001234567, c - 1)}
    assert stage.parity_metrics(reference, scored, [8]) == {
        "pytorch_dim_8_ndcg@10": 0.5,
        "onnx_dim_8_ndcg@10": 0.5,
        "onnx_dim_8_ndcg@10_change": 0.0,
        "onnx_query_max_abs_diff": 0.0,
        "onnx_document_max_abs_diff": 0.0,
        "onnx_int8_dim_8_ndcg@10": 0.25,
        "onnx_int8_dim_8_ndcg@10_change": -0.25,
        "onnx_int8_query_max_abs_diff": 0.001235,  # 4 significant digits
        "onnx_int8_document_max_abs_diff": 1.0,
    }


def test_stage_failure_leaves_no_output(tmp_path, exported, monkeypatch):
    from stages import export as stage

    paths = _stage_inputs(tmp_path, exported[0])
    out, metrics = tmp_path / "models" / "export", tmp_path / "m" / "export.json"

    def broken(src, dst):  # fails after model.onnx and the tokenizer were written
        assert Path(src).is_file()
        raise RuntimeError("disk full")

    monkeypatch.setattr(exporter, "quantize_int8", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        stage.main(_argv(paths, tmp_path))
    assert not out.exists() and not metrics.exists()
    assert list(out.parent.iterdir()) == []  # the temporary folder went too

    monkeypatch.undo()
    (paths["ir"] / "test.json").unlink()  # bad input: exit 1 with the file named, nothing written
    assert cli.run_stage(stage.main, _argv(paths, tmp_path)) == 1
    assert not out.exists() and not metrics.exists()


def test_openvino_telemetry_is_declined_without_touching_the_home_folder(tmp_path, monkeypatch):
    checker = pytest.importorskip("openvino_telemetry.utils.opt_in_checker")
    monkeypatch.setenv("HOME", str(tmp_path))  # no consent file there either way
    runtime.decline_openvino_telemetry()
    result = checker.OptInChecker().check(enable_opt_in_dialog=False)
    assert result == checker.ConsentCheckResult.DECLINED
    assert list(tmp_path.iterdir()) == []


def test_the_onnx_graph_is_fused_and_the_plain_one_is_not_left_behind(exported):
    import onnx

    model_dir, out = exported
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "SkipLayerNormalization" in ops, sorted(ops)  # onnxruntime's fused kernel
    assert not (out / "model_plain.onnx").exists()
    # The source model keeps its own attention (the export traces eager, then restores).
    model = _load_st(model_dir)
    before = model[0].auto_model.config._attn_implementation
    export.export_model(model, model_dir, out.parent / "again", ["onnx"], opset=18)
    assert model[0].auto_model.config._attn_implementation == before


def test_a_fused_graph_that_differs_is_replaced_by_the_plain_one(tmp_path, exported, monkeypatch):
    model_dir, _ = exported
    real_runner = runtime.ort_runner
    calls = []

    def runner(path, threads):
        run = real_runner(path, threads)
        calls.append(path)
        # The second session is the fused graph: make it disagree with the plain one.
        return (lambda feeds: run(feeds) + 1e-3) if len(calls) == 2 else run

    monkeypatch.setattr(exporter, "ort_runner", runner)
    out = tmp_path / "e"
    export.export_model(_load_st(model_dir), model_dir, out, ["onnx"], opset=18)
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "SkipLayerNormalization" not in ops
