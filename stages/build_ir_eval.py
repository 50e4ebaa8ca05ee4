"""build_ir_eval: the corpus, queries and relevant docs that retrieval is scored on.

The three dicts have the shape sentence-transformers' InformationRetrievalEvaluator takes.
``unique`` keeps one corpus entry per chunk id (sound recall and precision); ``rows`` keeps
one entry per pair as the reference run did, where every copy of a chunk counts as relevant.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from embedtune import cli, config, io
from embedtune.errors import StageError


def build_corpus(
    pairs: list[dict], mode: str, passages: list[dict] | None = None
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Return (corpus id -> text, chunk id -> corpus ids holding that chunk).

    ``passages`` is the knowledge base (fetch's corpus.jsonl): its passages without
    questions join the corpus once each, after the labelled ones, so every figure is
    measured against the distractors production retrieval faces."""
    corpus: dict[str, str] = {}
    holders: dict[str, list[str]] = defaultdict(list)
    for row in pairs:
        cid = row["chunk_id"] if mode == "unique" else f"r{row['id']}"
        if cid not in corpus:
            corpus[cid] = row["positive"]
            holders[row["chunk_id"]].append(cid)
    for passage in passages or []:
        if passage["id"] in holders:
            continue  # labelled: already in, once or once per row
        if passage["id"] in corpus:
            raise StageError(
                f"corpus id {passage['id']!r} clashes with a per-row copy's id; "
                "use build_ir_eval.corpus: unique"
            )
        corpus[passage["id"]] = passage["text"]
    return corpus, dict(holders)


def build_queries(part: list[dict], pairs: list[dict], holders: dict[str, list[str]]) -> dict:
    """Queries of one split part; a question asked of several chunks has them all relevant."""
    chunks_of: dict[str, set[str]] = defaultdict(set)
    for row in pairs:
        chunks_of[row["anchor"]].add(row["chunk_id"])
    queries: dict[str, str] = {}
    relevant: dict[str, list[str]] = {}
    seen: set[str] = set()
    for row in part:
        if row["anchor"] in seen:
            continue
        seen.add(row["anchor"])
        qid = f"q{row['id']}"
        queries[qid] = row["anchor"]
        relevant[qid] = sorted(cid for chunk in chunks_of[row["anchor"]] for cid in holders[chunk])
    return {"queries": queries, "relevant_docs": relevant}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--split", required=True, help="folder with train/dev/test.jsonl")
    ap.add_argument("--corpus", required=True, help="fetch's corpus.jsonl (the knowledge base)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    conf = config.load(args.params)
    parts = {n: io.read_jsonl(f"{args.split}/{n}.jsonl") for n in ("train", "dev", "test")}
    pairs = [r for rows in parts.values() for r in rows]
    corpus, holders = build_corpus(
        sorted(pairs, key=lambda r: r["id"]), conf.build_ir_eval.corpus, io.read_jsonl(args.corpus)
    )
    labelled = {cid for ids in holders.values() for cid in ids}
    queries = {name: build_queries(parts[name], pairs, holders) for name in ("dev", "test")}
    summary = {
        "corpus": len(corpus),
        "labelled": len(labelled),
        "unlabelled": len(corpus) - len(labelled),
        **{f"{name}_queries": len(q["queries"]) for name, q in queries.items()},
    }
    with io.atomic_path(args.out) as tmp:
        tmp.mkdir()
        io.write_jsonl(
            tmp / "corpus.jsonl",
            ({"id": k, "text": v, "labelled": k in labelled} for k, v in corpus.items()),
        )
        for name, q in queries.items():
            io.write_json(tmp / f"{name}.json", q)
        io.write_json(tmp / "summary.json", summary)
    print(
        f"build_ir_eval: corpus {len(corpus)} ({conf.build_ir_eval.corpus}; "
        f"{summary['unlabelled']} without questions), dev {len(parts['dev'])} / "
        f"test {len(parts['test'])} pairs"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
