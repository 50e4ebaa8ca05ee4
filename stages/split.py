"""split: seeded train / dev / test split of the pairs.

``random`` splits rows like the reference run (test questions may ask about chunks seen in
training: "new questions over a known knowledge base"); ``by_chunk`` and ``by_document``
keep every chunk or document on one side, which also measures generalisation. The dev part
picks the best checkpoint so the test part is used once, at the end.
"""

from __future__ import annotations

import argparse

from embedtune import cli, config, io
from embedtune.errors import StageError

GROUP_KEY = {"by_chunk": "chunk_id", "by_document": "document_id"}


def _cut(indices: list[int], groups: list[str] | None, size: float, seed: int) -> tuple[list, list]:
    """Split ``indices`` into (rest, held_out) with ``size`` of them (or of groups) held out."""
    # Imported here: scikit-learn takes a second to import, and a stage module is imported
    # before its interrupt handling is in place.
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    if groups is None:
        rest, held = train_test_split(indices, test_size=size, random_state=seed, shuffle=True)
        return sorted(rest), sorted(held)
    if len(set(groups)) < 2:
        raise StageError("need at least two distinct groups to split by group")
    splitter = GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
    rest_pos, held_pos = next(splitter.split(indices, groups=groups))
    return sorted(indices[i] for i in rest_pos), sorted(indices[i] for i in held_pos)


def split_pairs(pairs: list[dict], cfg: config.Split, seed: int) -> dict[str, list[dict]]:
    """Return {"train", "dev", "test"} lists of pairs; each pair gains its row number ``id``."""
    rows = [dict(pair, id=i) for i, pair in enumerate(pairs)]
    key = GROUP_KEY.get(cfg.strategy)
    groups = [r[key] for r in rows] if key else None
    anchors = [r["anchor"] for r in rows]
    if groups is None and len(set(anchors)) < len(anchors):
        # Real data often asks one question of several passages. A row split would put the
        # same question on both sides and the model would be tested on a question it trained
        # on, so rows sharing a question stay together. (Data with unique questions keeps the
        # plain row split, identical to the reference's.)
        groups = anchors
    if len(rows) < 3:
        raise StageError(f"only {len(rows)} pairs; need at least 3")
    rest, test = _cut(list(range(len(rows))), groups, cfg.test_size, seed)
    dev: list[int] = []
    if cfg.dev_size > 0:
        # dev_size is a share of all pairs; rescale it to the share of what is left.
        share = cfg.dev_size / (1 - cfg.test_size)
        rest, dev = _cut(rest, [groups[i] for i in rest] if groups else None, share, seed)
    parts = {"train": rest, "dev": dev, "test": test}
    for name in ("train", "test"):
        if not parts[name]:
            raise StageError(f"the {name} part is empty; use more data or other sizes")
    return {name: [rows[i] for i in idx] for name, idx in parts.items()}


def train_pool(parts: dict[str, list[dict]], passages: list[dict], strategy: str) -> list[str]:
    """Ids of the corpus passages training may see (as mined negatives): under ``by_chunk``
    none of a dev or test chunk, under ``by_document`` none of a dev or test document,
    labelled or not. Under ``random`` the whole knowledge base: test questions ask about
    passages training has seen, by design."""
    held = [r for name in ("dev", "test") for r in parts[name]]
    held_ids = {r["chunk_id"] for r in held} if strategy != "random" else set()
    held_texts = {r["positive"] for r in held} if strategy != "random" else set()
    held_docs = {r["document_id"] for r in held} if strategy == "by_document" else set()
    return sorted(
        passage["id"]
        for passage in passages
        if passage["id"] not in held_ids
        and passage["text"] not in held_texts
        and (passage["document_id"] is None or passage["document_id"] not in held_docs)
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--corpus", required=True, help="fetch's corpus.jsonl (the knowledge base)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    conf = config.load(args.params)
    parts = split_pairs(io.read_jsonl(args.pairs), conf.split, conf.common.seed)
    passages = io.read_jsonl(args.corpus)
    pool = train_pool(parts, passages, conf.split.strategy)
    with io.atomic_path(args.out) as tmp:
        tmp.mkdir()
        for name, rows in parts.items():
            io.write_jsonl(tmp / f"{name}.jsonl", rows)
        io.write_json(tmp / "train_pool.json", pool)
    sizes = ", ".join(f"{k} {len(v)}" for k, v in parts.items())
    print(
        f"split ({conf.split.strategy}, seed {conf.common.seed}): {sizes}; training may draw "
        f"negatives from {len(pool)} of {len(passages)} corpus passages"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
