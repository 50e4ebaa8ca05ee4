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
HYBRID = "hybrid_"  # key prefix of BM25 + dense reciprocal rank fusion


def offline() -> None:
    """Forbid Hub downloads: only fetch may touch the network, every later stage is local."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ[var] = "1"


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# Where Hugging Face configs keep the dropout on attention probabilities: BERT, RoBERTa,
# XLM-R, MPNet | ModernBERT, DistilBERT and decoder models | GPT-2-style models.
ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")


def load_model(path: str | Path, common: params.Common, config_overrides: dict | None = None):
    """Load a local sentence-transformers folder and check it can serve every dimension;
    ``config_overrides``: Hugging Face config keys set before the network is built."""
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
        config_kwargs=config_overrides or None,
    )
    model.max_seq_length = common.max_seq_length
    full = model.get_embedding_dimension()
    if full is None or max(common.dims) > full:
        raise StageError(
            f"params key 'common.dims': {common.dims} exceeds the model's "
            f"embedding dimension {full} ({path})"
        )
    return model


def load_for_training(
    path: str | Path, common: params.Common, attention_dropout: float | None
) -> tuple[object, dict]:
    """The model to fine-tune, with ``attention_dropout`` (None: the model's own) on its
    attention probabilities, and the config values it replaced, for ``restore_config``.

    Why it matters: PyTorch's fused CPU attention kernel (scaled_dot_product_attention)
    does not take dropout, so with dropout on, training falls back to the unfused kernel
    that keeps every attention matrix for the backward pass, most of one step's memory.
    The config is overridden at load time because each model family reads it when it
    builds its attention layers."""
    if attention_dropout is None:
        return load_model(path, common), {}
    # Read the keys from the config alone: loading the weights only to look would hold two
    # copies of the model at once, on the stage with the highest peak.
    config = transformer_config(Path(path))
    replaced = {k: getattr(config, k) for k in ATTENTION_DROPOUT_KEYS if hasattr(config, k)}
    overrides = None
    if not replaced:
        print(
            f"train: warning: {path}'s config names no attention dropout "
            f"({', '.join(ATTENTION_DROPOUT_KEYS)}); train.attention_dropout has no effect"
        )
    elif any(v != attention_dropout for v in replaced.values()):
        print(f"train: attention dropout {attention_dropout} (the model's own: {replaced})")
        overrides = dict.fromkeys(replaced, attention_dropout)
    return load_model(path, common, overrides), replaced


def transformer_folder(model_dir: Path) -> Path:
    """The folder of a sentence-transformers model's Transformer module (its Hugging Face
    config and tokenizer): the model's root for most models, a subfolder for some."""
    import json

    listing = model_dir / "modules.json"
    try:
        modules = json.loads(listing.read_text())
    except FileNotFoundError as exc:
        raise StageError(f"{listing}: not found (not a sentence-transformers folder?)") from exc
    except json.JSONDecodeError as exc:
        raise StageError(f"{listing}: not valid JSON: {exc}") from exc
    sub = next((m.get("path", "") for m in modules if m["type"].endswith("Transformer")), "")
    return model_dir / sub


def transformer_config(model_dir: Path):
    """The Hugging Face config of ``model_dir``'s Transformer module, without its weights."""
    from transformers import AutoConfig

    folder = transformer_folder(model_dir)
    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise StageError(f"{folder}: cannot read the model's config: {exc}") from exc


def restore_config(model, replaced: dict) -> None:
    """Put back the config values ``load_for_training`` replaced, so the saved model's
    config.json describes the model as its base did (a later fine-tune gets its dropout)."""
    config = model[0].auto_model.config
    for k, v in replaced.items():
        setattr(config, k, v)


def score_embeddings(
    q_emb, c_emb, data, common: params.Common, bm25: bool = True
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Every figure the baseline and evaluate stages report, from full-dimension query and
    corpus embeddings of ``data`` (a ``retrieval.IRData``; ``retrieval.encode_data`` makes
    them), at every dimension of ``common.dims``: dense (``dim_<d>_<metric>``, and
    ``labelled_...`` against the labelled passages only), hybrid with BM25
    (``hybrid_dim_<d>_<metric>``), int8 and binary (``int8_dim_<d>_ndcg@10``, ``ubinary_...``,
    with bytes per vector and index size), and with ``bm25`` BM25's own (``bm25_<metric>``).

    Returns (flat metrics, per-query ndcg@10 by query id under ``dim_<d>``,
    ``hybrid_dim_<d>`` and, with ``bm25``, ``bm25``)."""
    from embedtune import fusion, quantization, retrieval

    dims = common.dims
    depth = fusion.depth(len(data.corpus))  # rankings deep enough to fuse (fusion.DEPTH)
    dense = retrieval.dense_rankings(q_emb, c_emb, data, dims, depth)
    lexical = retrieval.bm25_rankings(data, depth, matched_only=True)
    results = {d: retrieval.score_rankings(hits, data) for d, hits in dense.items()}
    hybrid = {
        d: retrieval.score_rankings(fusion.fuse(lexical, hits, common.rrf_k), data)
        for d, hits in dense.items()
    }
    scores = retrieval.flat_metrics(results)
    labelled = retrieval.labelled_scores(q_emb, c_emb, data, dims)
    if labelled is not None:  # the corpus before the knowledge base: the gap is the point
        scores.update(retrieval.flat_metrics(labelled, LABELLED))
    scores.update(retrieval.flat_metrics(hybrid, HYBRID))
    scores.update(quantization.quantized_metrics(q_emb, c_emb, data, dims))
    per_query = {f"dim_{d}": ndcg for d, (_, ndcg) in results.items()}
    per_query.update({f"{HYBRID}dim_{d}": ndcg for d, (_, ndcg) in hybrid.items()})
    if bm25:
        metrics, per_query["bm25"] = retrieval.bm25_results(data)
        scores.update({f"bm25_{k}": round(v, 6) for k, v in metrics.items()})
        if data.labelled is not None:
            metrics, _ = retrieval.bm25_results(data.labelled_only())
            scores.update({f"{LABELLED}bm25_{k}": round(v, 6) for k, v in metrics.items()})
    return scores, per_query


def run_eval(
    model_dir: str,
    ir_dir: str,
    out: str,
    per_query_out: str,
    common: params.Common,
    bm25: bool,
    embeddings_out: str | None = None,
) -> dict:
    """Score a model on the test queries (``score_embeddings``) and write the metrics and the
    per-query ndcg@10 that the significance tests pair up; with ``embeddings_out``, also
    the corpus embeddings (embedtune.corpus_embeddings), for mining to reuse."""
    from embedtune import corpus_embeddings, retrieval

    model = load_model(model_dir, common)
    data = retrieval.IRData.load(ir_dir, "test")
    q_emb, c_emb = retrieval.encode_data(
        model, data, common.eval_batch_size, common.query_prompt, common.document_prompt
    )
    scores, per_query = score_embeddings(q_emb, c_emb, data, common, bm25)
    if embeddings_out is not None:
        made_under = corpus_embeddings.key(model_dir, common)
        corpus_embeddings.save(embeddings_out, list(data.corpus), c_emb, made_under)
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
    ap.add_argument(
        "--bm25", action="store_true", help="also report BM25's own metrics (hybrid always uses it)"
    )
    ap.add_argument("--embeddings", help="folder for the corpus embeddings (for mining to reuse)")
    args = ap.parse_args(argv)
    offline()
    conf = params.load(args.params)
    m = run_eval(
        args.model, args.ir, args.out, args.per_query, conf.common, args.bm25, args.embeddings
    )
    for name, prefix in (("dense", ""), ("hybrid", HYBRID)):
        dims = ", ".join(
            f"{d}d {m[metrics.key(d, metrics.HEADLINE, prefix)]:.4f}" for d in conf.common.dims
        )
        print(f"{stage}: {name} ndcg@10 {dims}")
