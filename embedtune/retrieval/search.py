"""Retrieval metrics at every Matryoshka dimension from one encoding pass.

sentence-transformers' InformationRetrievalEvaluator re-encodes corpus and queries once per
``truncate_dim``. Truncating a full-size embedding and re-normalising it gives the same
cosine scores, so here each model encodes once and every dimension is derived from that.
The metric definitions follow the evaluator's exactly (ties broken by ascending corpus id)
and a test holds them to it within 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from embedtune import io
from embedtune.metrics import ACCURACY_K, MAP_K, MAX_K, MRR_K, NDCG_K, PRECISION_RECALL_K, key
from embedtune.retrieval import vectors

if TYPE_CHECKING:  # torch takes seconds to import: only the functions that use it do
    import torch

QUERY_BLOCK = 1024  # queries scored at a time, at most ...
SCORE_CELLS = 2**25  # ... and at most this many query x passage scores (128 MB of float32)


@dataclass(frozen=True)
class IRData:
    """Corpus, queries and relevance in the evaluator's three-dict form."""

    corpus: dict[str, str]
    queries: dict[str, str]
    relevant_docs: dict[str, set[str]]
    # Corpus ids of the passages that have questions; None: every passage has.
    labelled: frozenset[str] | None = None

    @classmethod
    def load(cls, folder: str | Path, part: str) -> IRData:
        """Read build_ir_eval's output for one split part ("dev" or "test")."""
        folder = Path(folder)
        rows = io.read_jsonl(folder / "corpus.jsonl")
        corpus = {r["id"]: r["text"] for r in rows}
        labelled = frozenset(r["id"] for r in rows if r.get("labelled", True))
        data = io.read_json(folder / f"{part}.json")
        rel = {q: set(ids) for q, ids in data["relevant_docs"].items()}
        return cls(corpus, data["queries"], rel, None if len(labelled) == len(corpus) else labelled)

    def unlabelled_count(self) -> int:
        return 0 if self.labelled is None else len(self.corpus) - len(self.labelled)

    def labelled_only(self) -> IRData:
        """The same queries against only the passages that have questions: the corpus the
        figures were measured on before a knowledge base was given."""
        if self.labelled is None:
            return self
        corpus = {k: v for k, v in self.corpus.items() if k in self.labelled}
        return IRData(corpus, self.queries, self.relevant_docs)


def ranked_hits(
    queries: torch.Tensor, corpus: torch.Tensor, corpus_ids: list[str], k: int
) -> list[list[str]]:
    """Top-k corpus ids per query by cosine, ties by ascending id like the evaluator."""
    import torch

    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    c = torch.nn.functional.normalize(corpus.float(), dim=-1)
    k = min(k, c.shape[0])
    ranks, by_rank = vectors.id_ranks(corpus_ids)
    out: list[list[str]] = []
    # Blocks shrink as the corpus grows, so the score matrix stays bounded at any size.
    block = max(1, min(QUERY_BLOCK, SCORE_CELLS // max(1, c.shape[0])))
    for start in range(0, q.shape[0], block):
        scores = q[start : start + block] @ c.T
        top_v, top_i = torch.topk(scores, vectors.shortlist(k, c.shape[0]), dim=1)
        _, best = vectors.top_k(top_v.detach().cpu().numpy(), ranks[top_i.cpu().numpy()], k)
        out.extend([by_rank[r] for r in row] for row in best.tolist())
    return out


def score_hits(
    hits: list[list[str]], relevant: list[set[str]]
) -> tuple[dict[str, float], list[float]]:
    """Mean metrics (evaluator definitions) and per-query ndcg@10 for ranked hit lists."""
    n = len(hits)
    width = max(MAX_K, max((len(h) for h in hits), default=0))
    is_rel = np.zeros((n, width), dtype=bool)
    for i, (h, rel) in enumerate(zip(hits, relevant, strict=True)):
        is_rel[i, : len(h)] = [cid in rel for cid in h]
    n_rel = np.array([len(r) for r in relevant], dtype=float)
    ranks = np.arange(1, width + 1)
    out: dict[str, float] = {}
    for k in ACCURACY_K:
        out[f"accuracy@{k}"] = float(is_rel[:, :k].any(axis=1).mean())
    for k in PRECISION_RECALL_K:
        found = is_rel[:, :k].sum(axis=1)
        out[f"precision@{k}"] = float(np.mean(found / k))
        out[f"recall@{k}"] = float(np.mean(found / n_rel))
    first = np.where(is_rel[:, :MRR_K].any(axis=1), is_rel[:, :MRR_K].argmax(axis=1) + 1, np.inf)
    out[f"mrr@{MRR_K}"] = float(np.mean(1.0 / first))
    discount = 1.0 / np.log2(ranks[:NDCG_K] + 1)
    dcg = (is_rel[:, :NDCG_K] * discount).sum(axis=1)
    ideal = np.array([discount[: int(min(r, NDCG_K))].sum() for r in n_rel])
    ndcg = dcg / ideal
    out[f"ndcg@{NDCG_K}"] = float(ndcg.mean())
    hits_so_far = np.cumsum(is_rel[:, :MAP_K], axis=1)
    precision_at_hits = np.where(is_rel[:, :MAP_K], hits_so_far / ranks[:MAP_K], 0.0)
    out[f"map@{MAP_K}"] = float(np.mean(precision_at_hits.sum(axis=1) / np.minimum(MAP_K, n_rel)))
    return out, ndcg.tolist()


def encode(model, texts: list[str], prompt: str, batch_size: int, document: bool) -> torch.Tensor:
    """Full-dimension embeddings; the prompt is prepended exactly as the evaluator does.
    ``model`` is a SentenceTransformer or any encoder with its ``encode_query`` /
    ``encode_document`` (or only ``encode``) keywords, e.g. an exported model's; a numpy
    result is taken too."""
    import torch

    fn = getattr(model, "encode_document" if document else "encode_query", None) or model.encode
    kwargs = {"prompt": prompt or None, "batch_size": batch_size, "convert_to_tensor": True}
    return torch.as_tensor(fn(texts, **kwargs, show_progress_bar=True)).cpu()


Scores = dict[int, tuple[dict[str, float], dict[str, float]]]  # dim -> (metrics, {qid: ndcg})


def scored_queries(data: IRData) -> tuple[list[str], list[int]]:
    """Ids and row numbers (in ``data.queries`` order) of the queries that have relevant
    passages: the only ones a metric can be computed for."""
    keep = [i for i, q in enumerate(data.queries) if data.relevant_docs.get(q)]
    qids = list(data.queries)
    return [qids[i] for i in keep], keep


def score_rankings(
    hits: list[list[str]], data: IRData
) -> tuple[dict[str, float], dict[str, float]]:
    """Mean metrics and each query's ndcg@10 by query id for rankings of the scored queries
    (``scored_queries`` order); rankings deeper than MAX_K are scored on their top MAX_K."""
    qids, _ = scored_queries(data)
    metrics, ndcg = score_hits(hits, [data.relevant_docs[q] for q in qids])
    return metrics, dict(zip(qids, ndcg, strict=True))


def dense_rankings(
    q_emb: torch.Tensor, c_emb: torch.Tensor, data: IRData, dims: list[int], depth: int = MAX_K
) -> dict[int, list[list[str]]]:
    """Per dimension, each scored query's top ``depth`` corpus ids by cosine (truncate,
    re-normalise, rank)."""
    _, keep = scored_queries(data)
    q_emb = q_emb[keep]
    corpus_ids = list(data.corpus)
    return {d: ranked_hits(q_emb[:, :d], c_emb[:, :d], corpus_ids, depth) for d in dims}


def evaluate_embeddings(
    q_emb: torch.Tensor, c_emb: torch.Tensor, data: IRData, dims: list[int]
) -> Scores:
    """Metrics per dimension from full-size embeddings, and each query's ndcg@10 by query
    id (what the paired significance test pairs up)."""
    rankings = dense_rankings(q_emb, c_emb, data, dims)
    return {d: score_rankings(hits, data) for d, hits in rankings.items()}


def evaluate_model(
    model,
    data: IRData,
    dims: list[int],
    batch_size: int,
    query_prompt: str = "",
    document_prompt: str = "",
) -> Scores:
    """Encode once at full dimension, then score every dimension."""
    q_emb, c_emb = encode_data(model, data, batch_size, query_prompt, document_prompt)
    return evaluate_embeddings(q_emb, c_emb, data, dims)


def encode_data(model, data: IRData, batch_size: int, query_prompt: str, document_prompt: str):
    """(query embeddings, corpus embeddings), in the order of ``data``'s dicts."""
    q_emb = encode(model, list(data.queries.values()), query_prompt, batch_size, document=False)
    c_emb = encode(model, list(data.corpus.values()), document_prompt, batch_size, document=True)
    return q_emb, c_emb


def labelled_scores(
    q_emb: torch.Tensor, c_emb: torch.Tensor, data: IRData, dims: list[int]
) -> Scores | None:
    """When the knowledge base holds unlabelled passages, the scores against the labelled
    passages alone from the same embeddings (None otherwise)."""
    if data.labelled is None:
        return None
    rows = [i for i, cid in enumerate(data.corpus) if cid in data.labelled]
    return evaluate_embeddings(q_emb, c_emb[rows], data.labelled_only(), dims)


def evaluate_model_both(
    model, data: IRData, dims: list[int], batch_size: int, query_prompt="", document_prompt=""
) -> tuple[Scores, Scores | None]:
    """Scores against the full knowledge base and against the labelled passages alone (None
    when every passage is labelled): one encoding pass serves both."""
    q_emb, c_emb = encode_data(model, data, batch_size, query_prompt, document_prompt)
    return evaluate_embeddings(q_emb, c_emb, data, dims), labelled_scores(q_emb, c_emb, data, dims)


def bm25_rankings(data: IRData, depth: int = MAX_K, matched_only: bool = False) -> list[list[str]]:
    """The lexical baseline's top ``depth`` corpus ids per scored query: BM25 (bm25s, Lucene
    variant, English stopwords), ties by ascending id like the dense ranking. ``matched_only``
    drops passages that share no term with the query (score 0): their order is only the id
    order, which must not earn them fusion credit."""
    import bm25s

    corpus_ids = list(data.corpus)
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(list(data.corpus.values()), show_progress=False), show_progress=False
    )
    qids, _ = scored_queries(data)
    tokens = bm25s.tokenize([data.queries[q] for q in qids], show_progress=False)
    ranks, by_rank = vectors.id_ranks(corpus_ids)
    k = vectors.shortlist(depth, len(corpus_ids))
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    best_scores, best = vectors.top_k(scores, ranks[docs], depth)
    return [
        [by_rank[r] for s, r in zip(row_scores, row, strict=True) if s > 0 or not matched_only]
        for row_scores, row in zip(best_scores.tolist(), best.tolist(), strict=True)
    ]


def bm25_results(data: IRData) -> tuple[dict[str, float], dict[str, float]]:
    """BM25's metrics on the same corpus, queries and metric definitions as the models."""
    return score_rankings(bm25_rankings(data), data)


def flat_metrics(results: Scores, prefix: str = "") -> dict[str, float]:
    """Flat, stable keys for metrics JSON: ``dim_<d>_<metric>``."""
    return {
        key(d, name, prefix): round(value, 6)
        for d, (m, _) in results.items()
        for name, value in m.items()
    }
