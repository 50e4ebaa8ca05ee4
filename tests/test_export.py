"""The export stage writes every format and its parity metrics whole, or nothing at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from embedtune import cli, export, io
from embedtune.export import exporter, layout
from tests.pipeline import tiny_params
from tests.tiny import (
    DOC_PROMPT,
    EXACT_TOL,
    INT8_MAX_ABS,
    QUERY_PROMPT,
    toy_rows,
)


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
