"""Model loading and device choices shared by the stages.

sentence-transformers is imported inside the functions: it takes seconds to import, and
the offline switches below must be set before huggingface_hub reads them.
"""

from __future__ import annotations

import os
from pathlib import Path

from embedtune import io, metrics, params
from embedtune.errors import StageError

LABELLED = "labelled_"  # key prefix of the figures against the labelled passages only


def offline() -> None:
    """Forbid Hub downloads: only fetch may touch the network, every later stage is local."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(path: str | Path, common: params.Common):
    """Load a local sentence-transformers folder and check it can serve every dimension."""
    from sentence_transformers import SentenceTransformer

    path = Path(path)
    if not path.is_dir():
        raise StageError(f"{path}: model folder not found (run the stages before it)")
    kwargs = {"attn_implementation": "sdpa"} if device() == "cuda" else {}
    model = SentenceTransformer(
        str(path),
        device=device(),
        trust_remote_code=False,
        local_files_only=True,
        model_kwargs=kwargs,
    )
    model.max_seq_length = common.max_seq_length
    full = model.get_embedding_dimension()
    if full is None or max(common.dims) > full:
        raise StageError(
            f"params key 'common.dims': {common.dims} exceeds the model's "
            f"embedding dimension {full} ({path})"
        )
    return model


def run_eval(
    model_dir: str, ir_dir: str, out: str, per_query_out: str, common: params.Common, bm25: bool
) -> dict:
    """Score a model on the test queries at every dimension (and BM25, when asked) and
    write the metrics and the per-query ndcg@10 that the significance test pairs up."""
    from embedtune import retrieval

    model = load_model(model_dir, common)
    data = retrieval.IRData.load(ir_dir, "test")
    results, labelled = retrieval.evaluate_model_both(
        model,
        data,
        common.dims,
        common.eval_batch_size,
        common.query_prompt,
        common.document_prompt,
    )
    scores = retrieval.flat_metrics(results)
    if labelled is not None:  # the corpus before the knowledge base: the gap is the point
        scores.update(retrieval.flat_metrics(labelled, LABELLED))
    per_query = {f"dim_{d}": ndcg for d, (_, ndcg) in results.items()}
    if bm25:
        lexical, per_query["bm25"] = retrieval.bm25_results(data)
        scores.update({f"bm25_{k}": round(v, 6) for k, v in lexical.items()})
        if labelled is not None:
            lexical, _ = retrieval.bm25_results(data.labelled_only())
            scores.update({f"{LABELLED}bm25_{k}": round(v, 6) for k, v in lexical.items()})
    io.write_json(per_query_out, per_query)
    io.write_json(out, scores)
    return scores


def eval_cli(argv: list[str] | None, stage: str) -> None:
    """Command line shared by baseline and evaluate: same code, different model."""
    import argparse

    ap = argparse.ArgumentParser(
        prog=f"python -m stages.{stage}", description=f"{stage}: score a model at every dimension"
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True)
    ap.add_argument("--ir", required=True, help="build_ir_eval output folder")
    ap.add_argument("--out", required=True, help="metrics JSON")
    ap.add_argument("--per-query", required=True, help="per-query ndcg@10 JSON")
    ap.add_argument("--bm25", action="store_true", help="also score the BM25 lexical baseline")
    args = ap.parse_args(argv)
    offline()
    p = params.load(args.params)
    m = run_eval(args.model, args.ir, args.out, args.per_query, p.common, bm25=args.bm25)
    dims = ", ".join(f"{d}d {m[metrics.key(d, metrics.HEADLINE)]:.4f}" for d in p.common.dims)
    print(f"{stage}: ndcg@10 {dims}")
