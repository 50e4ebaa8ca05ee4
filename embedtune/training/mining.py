"""Hard-negative mining for the train stage: for each (question, passage) pair, the closest
training passage that does not answer the question, scored from the baseline's stored
corpus embeddings where they fit (``embedtune.retrieval.embedding_cache``) so the corpus is
encoded once.

datasets and sentence-transformers are imported inside _mine: they take seconds to import,
and the stage modules are imported before the stage's signal handler is installed.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import numpy as np

from embedtune import config, io
from embedtune.errors import StageError
from embedtune.retrieval import embedding_cache
from embedtune.retrieval.vectors import unit_rows

log = logging.getLogger(__name__)


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


def training_pool(split_dir: str | Path, corpus_path: str | Path) -> list[str]:
    """Texts of the knowledge-base passages the split lets training see (train_pool.json)."""
    allowed = set(io.read_json(Path(split_dir) / "train_pool.json"))
    return [r["text"] for r in io.read_jsonl(corpus_path) if r["id"] in allowed]


def stored_embeddings(
    folder: str | Path | None, model_dir: str | Path, common: config.Common, corpus: dict
) -> embedding_cache.Stored | None:
    """The baseline's embeddings (``folder``) if this base model, prompt and length made
    them, else None, saying why; ``corpus``: build_ir_eval's id -> text, naming the rows."""
    if not folder:
        return None
    made_under = embedding_cache.identity(model_dir, common)
    stored, why = embedding_cache.lookup(folder, made_under, corpus, any_encoder=True)
    if stored is None:
        log.info("mining encodes every passage itself (%s)", why)
    return stored


def library_corpus(corpus: list[str], positives: list[str]) -> list[str]:
    """The corpus as mine_hard_negatives orders it: the given passages, then any positive not
    among them, each once."""
    return list(dict.fromkeys(corpus + positives))


def seed_cache(folder: Path, model, corpus: list[str], prompt: str | None, matrix) -> Path:
    """Put precomputed corpus embeddings where mine_hard_negatives' ``cache_folder`` looks.

    It takes no embeddings argument; its cache file is named by a sha256 of (the model card's
    base model, corpus prompt, corpus prompt name, corpus), the recipe of the pinned
    sentence-transformers. Should a later version name it otherwise, the file is ignored
    and the corpus encoded again, which ``mine_negatives`` detects and reports."""
    name = model.model_card_data.base_model or ""
    digest = hashlib.sha256(repr((name, prompt, None, corpus)).encode()).hexdigest()
    path = folder / f"corpus_embeddings_{digest}.npy"
    np.save(path, unit_rows(matrix).astype(np.float32))  # it encodes with normalize=True
    return path


def mine_negatives(
    model,
    rows: list[dict],
    conf: config.Params,
    pool: list[str] | None = None,
    stored: embedding_cache.Stored | None = None,
) -> list[dict]:
    """Hard negatives scored by the base model, drawn from ``pool`` (the knowledge-base
    passages the split allows training to see: under by_chunk / by_document none of a dev
    or test chunk or document) or, without one, from the training split's own passages.
    A passage relevant to the question (paired with it anywhere in training) is never its
    negative. ``stored``: the baseline's embeddings of the corpus; only passages it lacks
    are encoded."""
    mine, common = conf.train.hard_negatives, conf.common
    positives = [r["positive"] for r in rows]
    corpus = sorted(set(pool) if pool is not None else set(positives))
    prompt = common.document_prompt or None
    with tempfile.TemporaryDirectory(prefix="embedtune-mining-") as cache:
        seeded = None
        if stored is not None:
            full = library_corpus(corpus, positives)
            matrix, encoded = embedding_cache.for_texts(model, full, stored, common)
            seeded = seed_cache(Path(cache), model, full, prompt, matrix)
            log.info(
                "mining reuses the baseline's embeddings of %d of %d passages (%d encoded now)",
                len(full) - encoded,
                len(full),
                encoded,
            )
        mined = _mine(model, rows, corpus, conf, cache if seeded else None)
        ignored = [f for f in Path(cache).glob("corpus_embeddings_*.npy") if f != seeded]
        if seeded is not None and ignored:
            log.warning(
                "sentence-transformers did not pick up the stored embeddings "
                "(its cache key changed) and encoded the corpus itself"
            )
    out = pick_negatives(mined, mine.candidates, relevant_texts(rows))
    log.info(
        "mined a hard negative for %d of %d training pairs from %d candidate passages",
        len(out),
        len(rows),
        len(corpus),
    )
    if not out:
        raise StageError(
            "hard negative mining found no usable negative; lower "
            "train.hard_negatives.relative_margin or raise range_max"
        )
    return out


def _mine(model, rows: list[dict], corpus: list[str], conf: config.Params, cache: str | None):
    """mine_hard_negatives' candidates, ``candidates`` per pair, as a list of rows."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    mine, common = conf.train.hard_negatives, conf.common
    pairs = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
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
        cache_folder=cache,
    )
    return list(mined)
