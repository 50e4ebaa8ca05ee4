"""compare: changes, significance, hybrid and quantization figures, and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from embedtune.errors import StageError
from stages import compare
from tests.pipeline import ROOT
from tests.tiny import PNG, toy_metrics


def test_changes_are_absolute_and_relative():
    table = compare.compare(toy_metrics(0.4), toy_metrics(0.5), [64, 32])
    row = table["dim_64_ndcg@10"]
    assert row["change"] == pytest.approx(0.1) and row["change_pct"] == pytest.approx(25.0)


def test_protocol_line_names_the_choices():
    from embedtune import config

    line = compare.protocol_line(config.load("profiles/reference-gpu.yaml"))
    assert "split `random`" in line and "corpus `rows`" in line
    assert "`positive_anchor`" in line and "TEST split" in line


def _stage_inputs(tmp_path, dims=(64, 32), hybrid=True):
    """Metrics and per-query files as baseline and evaluate write them: 30 queries where the
    fine-tuned hybrid beats BM25 by 0.2 on every query and base hybrid by 0.1."""
    qids = [f"q{i:02d}" for i in range(30)]
    spread = np.linspace(0, 0.2, 30)
    systems = {"bm25": 0.3, "base": 0.2, "finetuned": 0.35, "base_hybrid": 0.4, "ft_hybrid": 0.5}
    pq = {
        n: {q: round(v + s, 6) for q, s in zip(qids, spread, strict=True)}
        for n, v in systems.items()
    }
    base, tuned = toy_metrics(0.2, dims), toy_metrics(0.35, dims)
    base["bm25_ndcg@10"] = 0.4
    bq, tq = {"bm25": pq["bm25"]}, {}
    for d in dims:
        bq[f"dim_{d}"], tq[f"dim_{d}"] = pq["base"], pq["finetuned"]
        if hybrid:
            bq[f"hybrid_dim_{d}"], tq[f"hybrid_dim_{d}"] = pq["base_hybrid"], pq["ft_hybrid"]
        for m, loss, width in ((base, 0.1, 1), (tuned, 0.05, 1)):
            for prec, size in (("float32", 4 * d), ("int8", d), ("ubinary", d // 8)):
                m[f"{prec}_dim_{d}_bytes_per_vector"] = size * width
                m[f"{prec}_dim_{d}_index_bytes"] = size * 100
            m[f"int8_dim_{d}_ndcg@10"] = m[f"dim_{d}_ndcg@10"] - loss / 10
            m[f"ubinary_dim_{d}_ndcg@10"] = m[f"dim_{d}_ndcg@10"] - loss
    files = {}
    for name, data in (("bm", base), ("em", tuned), ("bq", bq), ("eq", tq)):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(data))
    export = {f"pytorch_dim_{d}_ndcg@10": 0.35 for d in dims}
    for d in dims:
        export.update(
            {f"onnx_int8_dim_{d}_ndcg@10": 0.34, f"onnx_int8_dim_{d}_ndcg@10_change": -0.01}
        )
    export.update(onnx_int8_query_max_abs_diff=0.004, onnx_int8_document_max_abs_diff=0.003)
    files["export"] = tmp_path / "export.json"
    files["export"].write_text(json.dumps(export))
    files["summary"] = tmp_path / "summary.json"
    files["summary"].write_text(json.dumps({"corpus": 100, "unlabelled": 0, "labelled": 100}))
    conf = yaml.safe_load((ROOT / "params.yaml").read_text())
    conf["common"]["dims"] = list(dims)
    conf["train"]["best_metric"] = f"eval_dim_{dims[-1]}_cosine_ndcg@10"
    files["params"] = tmp_path / "params.yaml"
    files["params"].write_text(yaml.safe_dump(conf))
    return files


def _run_stage(files, tmp_path):
    out = tmp_path / "out"
    compare.main(
        ["--params", str(files["params"]), "--baseline-metrics", str(files["bm"])]
        + ["--evaluate-metrics", str(files["em"]), "--baseline-per-query", str(files["bq"])]
        + ["--evaluate-per-query", str(files["eq"]), "--corpus-summary", str(files["summary"])]
        + ["--export-metrics", str(files["export"])]
        + ["--out", str(out / "compare.json"), "--report", str(out / "compare.md")]
        + ["--chart", str(out / "compare.png"), "--quant-chart", str(out / "quant.png")]
    )
    return out


def test_stage_reports_hybrids_and_quantization(tmp_path, capsys):
    out = _run_stage(_stage_inputs(tmp_path), tmp_path)
    report = (out / "compare.md").read_text()
    flat = json.loads((out / "compare.json").read_text())
    # Every system with its CI, at every dimension: 0.3 + mean(spread) = 0.4 for BM25.
    hybrid = report[report.index("## Hybrid") :].splitlines()
    row = next(line for line in hybrid if line.startswith("| 32 "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert [c.split()[0] for c in cells[1:]] == ["0.4000", "0.3000", "0.4500", "0.5000", "0.6000"]
    assert all(c.count("[") == 1 for c in cells[1:])
    # The paired tests: +0.2 on every query against BM25, +0.1 against base hybrid.
    assert "| 64    | BM25        | +0.2000  | [+0.2000, +0.2000] |" in report
    assert "| 64    | base hybrid | +0.1000  | [+0.1000, +0.1000] |" in report
    assert flat["hybrid_vs_bm25_dim_64_ndcg@10_mean_diff"] == pytest.approx(0.2)
    assert flat["hybrid_vs_bm25_dim_64_ndcg@10_significant"] is True
    assert flat["hybrid_vs_base_hybrid_dim_32_ndcg@10_mean_diff"] == pytest.approx(0.1)
    assert flat["finetuned_hybrid_dim_32_ndcg@10_mean"] == pytest.approx(0.6)
    assert flat["bm25_ndcg@10_ci_low"] < 0.4 < flat["bm25_ndcg@10_ci_high"]
    # Quantization: one row per dim and precision, and the loss against float32.
    assert "| 64    | binary (rescored) | 8              | 0.8         | 0.1000 | 0.3000 " in report
    assert flat["finetuned_ubinary_dim_64_ndcg@10_change"] == pytest.approx(-0.05)
    assert flat["base_int8_dim_32_ndcg@10_change"] == pytest.approx(-0.01)
    # Exports: PyTorch's figure, then each export's with its change and largest difference.
    assert "| ONNX int8 (dynamic) | 0.3400 (-0.0100) | 0.3400 (-0.0100) | 4.0e-03" in report
    # The existing keys stay, and every value is flat.
    assert flat["dim_64_ndcg@10_change"] == pytest.approx(0.15) and "dim_64_ndcg@10_p_value" in flat
    assert all(not isinstance(v, dict | list) for v in flat.values())
    for image in ("compare.png", "quant.png"):
        assert f"]({image})" in report and (out / image).read_bytes()[:8] == PNG
    assert "## Hybrid" in capsys.readouterr().out  # printed, up to the per-metric details


def test_stage_names_a_missing_per_query_file_entry(tmp_path):
    files = _stage_inputs(tmp_path, hybrid=False)
    with pytest.raises(StageError, match=r"bq.json: per-query scores 'hybrid_dim_64' missing"):
        _run_stage(files, tmp_path)
    assert not (tmp_path / "out" / "compare.json").exists()  # no partial output
