"""The knowledge base: every passage retrieval searches, labelled (asked about) or not.

A team's knowledge base holds every chunk of every document, typically many times the
chunks anyone wrote questions for; scoring against the labelled chunks alone measures
retrieval with far fewer distractors than production faces. fetch validates the
knowledge-base file as strictly as the pairs and checks the two agree: a labelled chunk
must be in the corpus with the same text (pairs without chunk ids are matched by text).
"""

from __future__ import annotations

from embedtune import params
from embedtune.errors import StageError
from embedtune.records import (
    Record,
    ident,
    raise_problems,
    require_columns,
    text_id,
    text_problem,
    warn_shared_texts,
)


def validate(records: list[Record], columns: params.CorpusColumns, source: str) -> list[dict]:
    """Clean passages ``{id, text, document_id}`` from a corpus file; one error listing
    every bad row. An exact repeat of a row (same id, same text) is dropped and counted;
    one id with two texts is an error."""
    mapping = {"text": columns.text}
    mapping.update({r: getattr(columns, r) for r in ("id", "document_id") if getattr(columns, r)})
    require_columns(records, mapping, source)
    problems: list[str] = []
    passages: list[dict] = []
    first: dict[str, tuple[str, str]] = {}  # id -> (text, where)
    repeats = 0
    for where, row in records:
        text_bad = text_problem(row.get(columns.text))
        if text_bad:
            problems.append(f"{source}: {where}, column {columns.text!r}: {text_bad}")
        ids: dict[str, str | None] = {}
        for role in ("id", "document_id"):
            col = getattr(columns, role)
            if col:
                ids[role], bad = ident(row.get(col))
                if bad:
                    problems.append(f"{source}: {where}, column {col!r}: {bad}")
        if text_bad or None in ids.values():
            continue
        text = row[columns.text].strip()
        pid = ids.get("id") or text_id(text)
        if pid in first:
            if first[pid][0] != text:
                problems.append(
                    f"{source}: {where}, column {columns.text!r}: passage id {pid!r} has a "
                    f"different text than at {first[pid][1]} (one id must map to one text)"
                )
            else:
                repeats += 1
            continue
        first[pid] = (text, where)
        passages.append({"id": pid, "text": text, "document_id": ids.get("document_id")})
    raise_problems(problems)
    if repeats:
        print(f"fetch: dropped {repeats} repeated passage row(s) from {source}")
    if columns.id:
        warn_shared_texts(first, source, "fetch.corpus.columns.id")
    return passages


def from_pairs(pairs: list[dict]) -> list[dict]:
    """The corpus when no knowledge base is given: the labelled chunks, once each."""
    out: dict[str, dict] = {}
    for r in pairs:
        out.setdefault(
            r["chunk_id"],
            {"id": r["chunk_id"], "text": r["positive"], "document_id": r["document_id"]},
        )
    return list(out.values())


def join(
    pairs: list[dict],
    chunk_where: dict[str, str],
    passages: list[dict],
    by_text: bool,
    pairs_source: str,
    corpus_source: str,
) -> tuple[list[dict], list[dict]]:
    """Check the pairs against the corpus and return (pairs, passages) that agree.

    With ``by_text`` (the pairs have no chunk ids) each pair's passage is found by its exact
    text and takes the corpus id. A passage without a document id takes its pairs' one.
    """
    by_id = {p["id"]: p for p in passages}
    id_of_text: dict[str, str] = {}
    for p in passages:
        id_of_text.setdefault(p["text"], p["id"])
    problems: list[str] = []
    new_id: dict[str, str] = {}
    doc_of: dict[str, str | None] = {}
    for r in pairs:
        chunk = r["chunk_id"]
        if chunk in new_id or chunk in doc_of:
            continue
        where = f"{pairs_source}: {chunk_where.get(chunk, '?')}"
        if by_text:
            found = id_of_text.get(r["positive"])
            if found is None:
                problems.append(f"{where}: passage text not found in the corpus {corpus_source}")
                continue
            new_id[chunk] = found
        else:
            found = chunk
            if chunk not in by_id:
                problems.append(f"{where}: chunk id {chunk!r} is not in the corpus {corpus_source}")
                continue
            if by_id[chunk]["text"] != r["positive"]:
                problems.append(
                    f"{where}: chunk id {chunk!r} has a different text in the corpus "
                    f"{corpus_source} (one chunk id must map to one text)"
                )
                continue
        doc = by_id[found]["document_id"]
        if doc is not None and r["document_id"] is not None and doc != r["document_id"]:
            problems.append(
                f"{where}: chunk {chunk!r} is in document {r['document_id']!r}, but the corpus "
                f"{corpus_source} puts it in {doc!r}"
            )
        doc_of[found] = r["document_id"]
    raise_problems(problems)
    pairs = [dict(r, chunk_id=new_id.get(r["chunk_id"], r["chunk_id"])) for r in pairs]
    passages = [
        dict(p, document_id=doc_of.get(p["id"])) if p["document_id"] is None else p
        for p in passages
    ]
    return pairs, passages


def summary(pairs: list[dict], passages: list[dict]) -> dict[str, int]:
    """Counts for provenance and the report."""
    labelled = {r["chunk_id"] for r in pairs}
    if not labelled <= {p["id"] for p in passages}:
        raise StageError("fetch: internal error: a labelled chunk is missing from the corpus")
    return {
        "passages": len(passages),
        "labelled": len(labelled),
        "unlabelled": len(passages) - len(labelled),
    }
