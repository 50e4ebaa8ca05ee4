"""Hard-negative mining for the train stage: for each (question, passage) pair, the closest
training passage that does not answer the question.

datasets and sentence-transformers are imported inside mine_negatives: they take seconds to
import, and the stage modules are imported before the stage's signal handler is installed.
"""

from __future__ import annotations

from embedtune import params
from embedtune.errors import StageError


def relevant_texts(rows: list[dict]) -> dict[str, set[str]]:
    """Every passage each question is paired with (a question may be asked of several)."""
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["anchor"], set()).add(r["positive"])
    return out


def pick_negatives(mined: list[dict], candidates: int, relevant: dict[str, set[str]]) -> list[dict]:
    """(anchor, positive, negative) rows: the closest mined candidate that is not relevant to
    the question. Pairs with no usable candidate are dropped."""
    out = []
    for row in mined:
        for i in range(1, candidates + 1):
            negative = row.get(f"negative_{i}")
            if negative is not None and negative not in relevant[row["anchor"]]:
                out.append(
                    {"anchor": row["anchor"], "positive": row["positive"], "negative": negative}
                )
                break
    return out


def mine_negatives(
    model, rows: list[dict], conf: params.Params, pool: list[str] | None = None
) -> list[dict]:
    """Hard negatives scored by the base model, drawn from ``pool`` (the knowledge-base
    passages the split allows training to see: under by_chunk / by_document none of a dev
    or test chunk or document) or, without one, from the training split's own passages.
    A passage relevant to the question (paired with it anywhere in training) is never its
    negative."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    mine, common = conf.train.hard_negatives, conf.common
    pairs = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
    corpus = sorted(set(pool) if pool is not None else {r["positive"] for r in rows})
    mined = mine_hard_negatives(
        pairs,
        model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=corpus,
        range_min=mine.range_min,
        range_max=min(mine.range_max, len(corpus)),
        relative_margin=mine.relative_margin,
        num_negatives=mine.candidates,
        sampling_strategy="top",
        query_prompt=common.query_prompt or None,
        corpus_prompt=common.document_prompt or None,
        output_format="n-tuple",
        batch_size=common.eval_batch_size,
        verbose=False,
    )
    out = pick_negatives(list(mined), mine.candidates, relevant_texts(rows))
    print(
        f"train: mined a hard negative for {len(out)} of {len(rows)} training pairs from "
        f"{len(corpus)} candidate passages"
    )
    if not out:
        raise StageError(
            "train: hard negative mining found no usable negative; lower "
            "train.hard_negatives.relative_margin or raise range_max"
        )
    return out
