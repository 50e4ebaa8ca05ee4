"""Filters on generated questions, each one counted: an LLM's questions are only as useful
as the share of them that really belong to their passage.

In order (cheap first): empty, over-long (base-model tokens), duplicates (normalised text;
optionally near-duplicates by base-model cosine, sentence-transformers' paraphrase mining),
then round-trip consistency (InPars / Promptagator): a question is kept only if its own
passage ranks in the top k for it, with a minimum score, among every passage.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from embedtune import config

Candidate = tuple[int, str]  # (passage index, question)
FILTERS = ("empty", "too_long", "duplicate", "near_duplicate", "roundtrip")
QUERY_BLOCK = 1024  # questions scored at a time by the model round-trip


def normalise(question: str) -> str:
    """Case, spacing and surrounding quotes or punctuation do not make a new question."""
    text = " ".join(question.lower().split())
    return re.sub(r"^[\W_]+|[\W_]+$", "", text)


@dataclass
class Filtered:
    kept: list[Candidate]
    dropped: dict[str, int]


def _bm25_keep(cands: list[Candidate], passages: list[str], rt: config.RoundTrip) -> list[bool]:
    import bm25s

    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(passages, stopwords="en", show_progress=False), show_progress=False
    )
    k = min(rt.top_k, len(passages))
    tokens = bm25s.tokenize([q for _, q in cands], stopwords="en", show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=k, show_progress=False)
    keep = []
    for (pid, _), row_docs, row_scores in zip(cands, docs.tolist(), scores.tolist(), strict=True):
        score = dict(zip(row_docs, row_scores, strict=True)).get(pid)
        # A score of 0 shares no term with the passage: its rank is an accident of ties.
        keep.append(score is not None and score > 0 and score >= rt.min_score)
    return keep


def _model_keep(
    cands: list[Candidate], passages: list[str], rt: config.RoundTrip, encode: Callable
) -> list[bool]:
    import torch

    docs = encode(passages, document=True)
    queries = encode([q for _, q in cands], document=False)
    k = min(rt.top_k, len(passages))
    keep: list[bool] = []
    for i in range(0, len(cands), QUERY_BLOCK):
        scores = queries[i : i + QUERY_BLOCK] @ docs.T
        top = torch.topk(scores, k, dim=1)
        for row, (pid, _) in enumerate(cands[i : i + QUERY_BLOCK]):
            hits = dict(zip(top.indices[row].tolist(), top.values[row].tolist(), strict=True))
            keep.append(pid in hits and hits[pid] >= rt.min_score)
    return keep


def _near_duplicates(questions: list[str], threshold: float, encode: Callable) -> set[int]:
    """Indexes of questions too close to an earlier one (the first of a group is kept)."""
    from sentence_transformers.util import paraphrase_mining_embeddings

    emb = encode(questions, document=False)
    drop: set[int] = set()
    for score, i, j in sorted(paraphrase_mining_embeddings(emb), key=lambda t: (t[1], t[2])):
        a, b = min(i, j), max(i, j)
        if score >= threshold and a not in drop:
            drop.add(b)
    return drop


def apply(
    cands: list[Candidate],
    passages: list[str],
    count_tokens: Callable[[str], int],
    g: config.Generate,
    encode: Callable | None = None,
) -> Filtered:
    """Run every filter; ``encode(texts, document=bool)`` gives normalised base-model
    embeddings (needed only for near-duplicates and the model round-trip)."""
    dropped = dict.fromkeys(FILTERS, 0)
    out: list[Candidate] = []
    for pid, q in cands:
        q = " ".join(q.split())
        if not normalise(q):
            dropped["empty"] += 1
        elif count_tokens(q) > g.max_question_tokens:
            dropped["too_long"] += 1
        else:
            out.append((pid, q))
    seen: set[str] = set()
    unique = []
    for pid, q in out:
        norm = normalise(q)
        if norm in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(norm)
            unique.append((pid, q))
    out = unique
    if g.dedup_threshold is not None and len(out) > 1:
        drop = _near_duplicates([q for _, q in out], g.dedup_threshold, encode)
        dropped["near_duplicate"] = len(drop)
        out = [c for i, c in enumerate(out) if i not in drop]
    rt = g.roundtrip
    if rt.retriever != "none" and out:
        if rt.retriever == "bm25":
            keep = _bm25_keep(out, passages, rt)
        else:
            keep = _model_keep(out, passages, rt, encode)
        dropped["roundtrip"] = keep.count(False)
        out = [c for c, k in zip(out, keep, strict=True) if k]
    return Filtered(out, dropped)
