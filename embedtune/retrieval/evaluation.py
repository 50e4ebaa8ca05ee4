"""The evaluation the baseline and evaluate stages share: one model scored on the test
queries at every dimension, dense, hybrid with BM25 and quantized, with per-query ndcg@10
for the significance tests."""

from __future__ import annotations

import logging

from embedtune import cli, config, io, metrics
from embedtune.metrics import HYBRID, LABELLED
from embedtune.models import load_model

log = logging.getLogger(__name__)


def score_embeddings(
    q_emb, c_emb, data, common: config.Common, bm25: bool = True
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Every figure the baseline and evaluate stages report, from full-dimension query and
    corpus embeddings of ``data`` (a ``search.IRData``; ``search.encode_data`` makes
    them), at every dimension of ``common.dims``: dense (``dim_<d>_<metric>``, and
    ``labelled_...`` against the labelled passages only), hybrid with BM25
    (``hybrid_dim_<d>_<metric>``), int8 and binary (``int8_dim_<d>_ndcg@10``, ``ubinary_...``,
    with bytes per vector and index size), and with ``bm25`` BM25's own (``bm25_<metric>``).

    Returns (flat metrics, per-query ndcg@10 by query id under ``dim_<d>``,
    ``hybrid_dim_<d>`` and, with ``bm25``, ``bm25``)."""
    from embedtune.retrieval import fusion, quantization, search

    dims = common.dims
    depth = fusion.depth(len(data.corpus))  # rankings deep enough to fuse (fusion.DEPTH)
    dense = search.dense_rankings(q_emb, c_emb, data, dims, depth)
    lexical = search.bm25_rankings(data, depth, matched_only=True)
    results = {d: search.score_rankings(hits, data) for d, hits in dense.items()}
    hybrid = {
        d: search.score_rankings(fusion.fuse(lexical, hits, common.rrf_k), data)
        for d, hits in dense.items()
    }
    scores = search.flat_metrics(results)
    labelled = search.labelled_scores(q_emb, c_emb, data, dims)
    if labelled is not None:  # the corpus before the knowledge base: the gap is the point
        scores.update(search.flat_metrics(labelled, LABELLED))
    scores.update(search.flat_metrics(hybrid, HYBRID))
    scores.update(quantization.quantized_metrics(q_emb, c_emb, data, dims))
    per_query = {f"dim_{d}": ndcg for d, (_, ndcg) in results.items()}
    per_query.update({f"{HYBRID}dim_{d}": ndcg for d, (_, ndcg) in hybrid.items()})
    if bm25:
        bm25_metrics, per_query["bm25"] = search.bm25_results(data)
        scores.update({f"bm25_{k}": round(v, 6) for k, v in bm25_metrics.items()})
        if data.labelled is not None:
            bm25_metrics, _ = search.bm25_results(data.labelled_only())
            scores.update({f"{LABELLED}bm25_{k}": round(v, 6) for k, v in bm25_metrics.items()})
    return scores, per_query


def encode_test(model, model_dir, data, common: config.Common, reuse=None, choose=None):
    """(query embeddings, corpus embeddings, encoder name) of ``data`` for scoring.

    ``reuse``: a folder of stored corpus embeddings (embedtune.retrieval.embedding_cache),
    used when PyTorch on this device made them from these very model bytes, prompt, length
    and batch size (the train stage's last dev evaluation of the chosen checkpoint): then
    only the queries, and any passage the store lacks, are encoded, with PyTorch too.
    ``choose(model, model_dir, passages, common)``: picks the encoder otherwise
    (embedtune.export.encoders.choose; None: PyTorch)."""
    import torch

    from embedtune.retrieval import embedding_cache, search

    queries, passages = list(data.queries.values()), list(data.corpus.values())
    batch = common.eval_batch_size
    if reuse is not None:
        made_under = embedding_cache.identity(model_dir, common)
        stored, why = embedding_cache.lookup(reuse, made_under, data.corpus)
        if stored is not None:
            c_emb, encoded = embedding_cache.for_texts(model, passages, stored, common)
            log.info("corpus embeddings read from %s (%d encoded now)", reuse, encoded)
            q_emb = search.encode(model, queries, common.query_prompt, batch, document=False)
            return q_emb, torch.from_numpy(c_emb), made_under["encoder"]
        log.info("encoding the corpus (%s)", why)
    if choose is None:
        encoder, name, reason = model, embedding_cache.identity_encoder(), "PyTorch"
    else:
        choice = choose(model, model_dir, passages, common)
        encoder, name, reason = choice.encoder, choice.name, choice.reason
    log.info("encoding with %s (%s)", name, reason)
    try:
        q_emb, c_emb = search.encode_data(
            encoder, data, batch, common.query_prompt, common.document_prompt
        )
    finally:
        if hasattr(encoder, "close"):  # a multi-process pool
            encoder.close()
    return q_emb, c_emb, name


def run_eval(
    model_dir: str,
    ir_dir: str,
    out: str,
    per_query_out: str,
    common: config.Common,
    bm25: bool,
    embeddings_out: str | None = None,
    reuse: str | None = None,
    choose=None,
) -> dict:
    """Score a model on the test queries (``score_embeddings``) and write the metrics and the
    per-query ndcg@10 that the significance tests pair up; with ``embeddings_out``, also
    the corpus embeddings (embedtune.retrieval.embedding_cache), for mining to reuse.
    ``reuse`` and ``choose``: see ``encode_test``."""
    from embedtune.retrieval import embedding_cache, search

    model = load_model(model_dir, common)
    data = search.IRData.load(ir_dir, "test")
    q_emb, c_emb, encoder = encode_test(model, model_dir, data, common, reuse, choose)
    scores, per_query = score_embeddings(q_emb, c_emb, data, common, bm25)
    if embeddings_out is not None:
        made_under = embedding_cache.identity(model_dir, common, encoder)
        embedding_cache.save(embeddings_out, list(data.corpus), c_emb, made_under)
    io.write_json(per_query_out, per_query)
    io.write_json(out, scores)
    return scores


def eval_cli(argv: list[str] | None, stage: str, choose=None) -> None:
    """Command line shared by baseline and evaluate: same code, different model;
    ``choose``: see ``encode_test``."""
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
    ap.add_argument(
        "--reuse-embeddings", help="stored corpus embeddings of this model (the train stage's)"
    )
    args = ap.parse_args(argv)
    cli.offline()
    conf = config.load(args.params)
    scores = run_eval(
        args.model, args.ir, args.out, args.per_query, conf.common, args.bm25, args.embeddings,
        args.reuse_embeddings, choose,
    )  # fmt: skip
    for name, prefix in (("dense", ""), ("hybrid", HYBRID)):
        dims = ", ".join(
            f"{d}d {scores[metrics.key(d, metrics.HEADLINE, prefix)]:.4f}" for d in conf.common.dims
        )
        log.info("%s ndcg@10 %s", name, dims)
