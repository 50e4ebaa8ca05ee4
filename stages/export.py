"""export: the fine-tuned model as ONNX (float32 and int8) and OpenVINO IR, each scored on the
test split with the evaluation code of the evaluate stage, against the PyTorch model.

The sentence-transformers ONNX/OpenVINO extras cannot be installed beside the pinned
transformers, so embedtune.export does the work with torch.onnx.export(dynamo=True),
onnxruntime's quantize_dynamic and the openvino runtime (see its docstring). Use an export
with ``embedtune.export.load_encoder("models/export", "onnx_int8")``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedtune import cli, config, io, metrics, models
from embedtune.errors import StageError

PYTORCH = "pytorch"


def score(encoder, data, common: config.Common):
    """(metrics by dim, query embeddings, corpus embeddings) of one encoder: the evaluate
    stage's evaluate_model, split in its two steps to keep the embeddings for the diff."""
    from embedtune.retrieval import search

    q, c = search.encode_data(
        encoder, data, common.eval_batch_size, common.query_prompt, common.document_prompt
    )
    return search.evaluate_embeddings(q, c, data, common.dims), q, c


def parity_metrics(reference: tuple, scored: dict[str, tuple], dims: list[int]) -> dict[str, float]:
    """How far each export is from the PyTorch model, as flat metrics: ndcg@10 per format
    and dim, its change against PyTorch, and the largest absolute embedding difference
    against PyTorch on the test queries and passages. ``reference`` and each value of
    ``scored`` (by format) are what ``score`` returns."""
    from embedtune.retrieval import search

    head = metrics.HEADLINE
    ref_flat = search.flat_metrics(reference[0])
    out = {f"{PYTORCH}_{metrics.key(d, head)}": ref_flat[metrics.key(d, head)] for d in dims}
    for fmt, (results, q, c) in scored.items():
        flat = search.flat_metrics(results)
        for d in dims:
            k = metrics.key(d, head)
            out[f"{fmt}_{k}"] = flat[k]
            out[f"{fmt}_{k}_change"] = round(flat[k] - ref_flat[k], 6)
        out[f"{fmt}_query_max_abs_diff"] = _max_abs_diff(q, reference[1])
        out[f"{fmt}_document_max_abs_diff"] = _max_abs_diff(c, reference[2])
    return out


def _max_abs_diff(a, b) -> float:
    return float(f"{(a - b).abs().max().item():.3e}")  # 4 significant digits: stable JSON


def table(scores: dict[str, float], formats: list[str], dims: list[int]) -> str:
    """ndcg@10 per format and dim (change against PyTorch) and the largest differences."""
    head = metrics.HEADLINE
    lines = [f"{'format':10s} " + " ".join(f"{f'{d}d':>18s}" for d in dims) + "  max|diff| q/doc"]
    for fmt in [PYTORCH, *formats]:
        cells = []
        for d in dims:
            k = f"{fmt}_{metrics.key(d, head)}"
            change = scores.get(f"{k}_change")
            cells.append(f"{scores[k]:.4f}" + (f" ({change:+.4f})" if change is not None else ""))
        line = f"{fmt:10s} " + " ".join(f"{c:>18s}" for c in cells)
        if fmt != PYTORCH:
            q, doc = scores[f"{fmt}_query_max_abs_diff"], scores[f"{fmt}_document_max_abs_diff"]
            line += f"  {q:.1e}/{doc:.1e}"
        lines.append(line)
    return "\n".join(lines)


def run(
    model_dir: str,
    ir_dir: str,
    out: str,
    metrics_out: str,
    conf: config.Params,
    reuse: str | None = None,
) -> dict:
    """Export every format into ``out``, score each and the PyTorch model, write the metrics.
    Both outputs appear only when everything succeeded. ``reuse``: stored PyTorch corpus
    embeddings of this model (the train stage's), read instead of encoding the PyTorch row's
    corpus again when they match."""
    from embedtune import export
    from embedtune.retrieval import evaluation, search

    formats = list(conf.export.formats)
    for name in ("corpus.jsonl", "test.json"):  # bad input fails before minutes of export
        if not (Path(ir_dir) / name).is_file():
            raise StageError(f"{Path(ir_dir) / name}: not found (run build_ir_eval first)")
    data = search.IRData.load(ir_dir, "test")
    model = models.load_model(model_dir, conf.common)
    model.to("cpu")  # the exports serve CPUs; compare like with like
    # The reference is PyTorch by definition: never another encoder, stored rows or not.
    q, c, _ = evaluation.encode_test(model, model_dir, data, conf.common, reuse)
    reference = (search.evaluate_embeddings(q, c, data, conf.common.dims), q, c)
    with io.atomic_path(out) as tmp:
        export.export_model(model, model_dir, tmp, formats, conf.export.opset)
        scored = {f: score(export.load_encoder(tmp, f), data, conf.common) for f in formats}
        scores = parity_metrics(reference, scored, conf.common.dims)
        io.write_json(metrics_out, scores)
    print(table(scores, formats, conf.common.dims))
    return scores


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m stages.export", description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="sentence-transformers folder to export")
    ap.add_argument("--ir", required=True, help="build_ir_eval output folder")
    ap.add_argument("--out", required=True, help="export folder")
    ap.add_argument("--metrics", required=True, help="metrics JSON")
    ap.add_argument(
        "--reuse-embeddings", help="stored PyTorch corpus embeddings of this model (train's)"
    )
    args = ap.parse_args(argv)
    cli.offline()
    run(
        args.model, args.ir, args.out, args.metrics, config.load(args.params), args.reuse_embeddings
    )
    print(f"export: wrote {Path(args.out)} and {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
