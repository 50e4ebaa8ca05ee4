"""fetch: bring the question-chunk pairs, the knowledge base and the base model into
DVC-tracked outputs (the model copy itself is embedtune.data.model_source).

Every later stage reads only these outputs, so nothing after fetch touches the network.
All rows are validated before anything is written: a bad file fails here, naming the file,
row and column, instead of hours into training.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from embedtune import cli, config, io
from embedtune.data import corpus, truncation
from embedtune.data.model_source import copy_model, hub_commit
from embedtune.data.records import (
    Cells,
    Record,
    checked_rows,
    raise_problems,
    read_records,
    require_columns,
    text_id,
    warn_shared_texts,
)
from embedtune.errors import StageError

SAMPLE_PATH = Path("sample/legal_sample.csv.gz")
TEXT_ROLES = ("anchor", "positive")  # the other mapped columns are ids


def validate_pairs(records: list[Record], columns: config.Columns, source: str) -> list[dict]:
    """Check every row and return clean pairs; raise one error listing what is wrong.

    Exact duplicate rows are dropped (they would weigh a pair twice and can put the same
    text twice in a batch); the count is printed so nothing disappears silently.
    """
    return check_pairs(records, columns, source)[0]


def check_pairs(
    records: list[Record], columns: config.Columns, source: str
) -> tuple[list[dict], dict[str, str]]:
    """validate_pairs, also returning where each chunk id first appears (for messages)."""
    mapping = {"anchor": columns.anchor, "positive": columns.positive}
    for role in ("chunk_id", "document_id"):
        if getattr(columns, role):
            mapping[role] = getattr(columns, role)
    require_columns(records, mapping, source)
    cells: Cells = {
        role: (col, "text" if role in TEXT_ROLES else "id") for role, col in mapping.items()
    }
    problems: list[str] = []
    pairs: list[dict] = []
    chunk_text: dict[str, tuple[str, str]] = {}
    seen: set[tuple[str, str, str]] = set()
    dropped = 0
    for where, _, cell in checked_rows(records, cells, source, problems):
        anchor, positive = cell["anchor"], cell["positive"]
        chunk = cell.get("chunk_id") or text_id(positive)
        first = chunk_text.setdefault(chunk, (positive, where))
        if first[0] != positive:
            problems.append(
                f"{source}: {where}, column {mapping['positive']!r}: chunk id {chunk!r} has a "
                f"different text than at {first[1]} (one chunk id must map to one text)"
            )
            continue
        key = (anchor, positive, chunk)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        pairs.append(
            {
                "anchor": anchor,
                "positive": positive,
                "chunk_id": chunk,
                "document_id": cell.get("document_id"),
            }
        )
    raise_problems(problems)
    if dropped:
        print(f"fetch: dropped {dropped} exact duplicate row(s) from {source}")
    warn_shared_texts(chunk_text, source, "fetch.columns.chunk_id")
    return pairs, {chunk: where for chunk, (_, where) in chunk_text.items()}


def load_records(cfg: config.Fetch) -> tuple[list[Record], str]:
    """Read the configured data source; returns records and a name for messages."""
    if cfg.source in ("sample", "file"):
        path = Path(cfg.path)
        if cfg.source == "sample" and path.resolve() != SAMPLE_PATH.resolve():
            raise StageError(
                f"params key 'fetch.path': source 'sample' reads {SAMPLE_PATH}; "
                "use source 'file' for another file"
            )
        return read_records(path), str(path)
    import datasets

    sha = hub_commit("dataset", cfg.name, cfg.revision)
    ds = datasets.load_dataset(cfg.name, revision=sha, split=cfg.split)
    label = f"{cfg.name}@{sha}[{cfg.split}]"
    return [(f"row {i + 1}", r) for i, r in enumerate(ds)], label


def load_corpus(cfg: config.Fetch, pairs: list[dict], chunk_where: dict[str, str], label: str):
    """The knowledge base checked against the pairs: (pairs, passages, corpus label)."""
    if cfg.corpus.source == "pairs":
        return pairs, corpus.from_pairs(pairs), f"the labelled passages of {label}"
    path = cfg.corpus.path
    passages = corpus.validate(read_records(Path(path)), cfg.corpus.columns, path)
    pairs, passages = corpus.join(
        pairs, chunk_where, passages, cfg.columns.chunk_id is None, label, path
    )
    return pairs, passages, path


def measure_truncation(
    pairs: list[dict], passages: list[dict], model_dir: Path, common: config.Common
) -> dict:
    """What ``common.max_seq_length`` cuts off the questions and every corpus passage, in
    the model's own tokens."""
    return truncation.measure(
        sorted({r["anchor"] for r in pairs}),
        {passage["id"]: passage["text"] for passage in passages},
        truncation.token_counter(model_dir),
        common.max_seq_length,
        common.query_prompt,
        common.document_prompt,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for pairs.jsonl and corpus.jsonl")
    ap.add_argument("--model-out", required=True, help="folder for the base model")
    args = ap.parse_args(argv)
    conf = config.load(args.params)
    records, label = load_records(conf.fetch)
    pairs, chunk_where = check_pairs(records, conf.fetch.columns, label)
    pairs, passages, corpus_label = load_corpus(conf.fetch, pairs, chunk_where, label)
    counts = corpus.summary(pairs, passages)
    with io.atomic_path(args.model_out) as tmp_model:
        model_label = copy_model(conf.common.model, tmp_model)
        cut = measure_truncation(pairs, passages, tmp_model, conf.common)
        print(("fetch: warning: " if cut["passages_cut"] else "fetch: ") + truncation.describe(cut))
        truncation.check(cut, conf.fetch.max_truncated_share, corpus_label)
        with io.atomic_path(args.out) as tmp:
            tmp.mkdir()
            io.write_jsonl(tmp / "pairs.jsonl", pairs)
            io.write_jsonl(tmp / "corpus.jsonl", passages)
            # Provenance: which data and model this version was built from (for a Hub
            # source, the commit the revision resolved to).
            source = {
                "data": label,
                "corpus": {"source": corpus_label, **counts},
                "model": model_label,
                "pairs": len(pairs),
                "chunks": counts["labelled"],
                "truncation": cut,
            }
            io.write_json(tmp / "source.json", source)
    print(
        f"fetch: {len(pairs)} pairs over {counts['labelled']} chunks from {label}; corpus "
        f"{counts['passages']} passages ({counts['unlabelled']} without questions) from "
        f"{corpus_label}; model -> {args.model_out}"
    )


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
