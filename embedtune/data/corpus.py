"""The knowledge base: every passage retrieval searches, labelled (asked about) or not.

A team's knowledge base holds every chunk of every document, typically many times the
chunks anyone wrote questions for; scoring against the labelled chunks alone measures
retrieval with far fewer distractors than production faces. fetch validates the
knowledge-base file as strictly as the pairs and checks the two agree: a labelled chunk
must be in the corpus with the same text (pairs without chunk ids are matched by text).
"""

from __future__ import annotations

import logging

from embedtune import config
from embedtune.data.records import (
    Cells,
    Record,
    checked_rows,
    raise_problems,
    require_columns,
    text_id,
    warn_shared_texts,
)
from embedtune.errors import StageError

log = logging.getLogger(__name__)


def validate(records: list[Record], columns: config.CorpusColumns, source: str) -> list[dict]:
    """Clean passages ``{id, text, document_id}`` from a corpus file; one error listing
    every bad row. An exact repeat of a row (same id, same text) is dropped and counted;
    one id with two texts is an error."""
    mapping = {"text": columns.text}
    mapping.update(
        {role: getattr(columns, role) for role in ("id", "document_id") if getattr(columns, role)}
    )
    require_columns(records, mapping, source)
    cells: Cells = {
        role: (col, "text" if role == "text" else "id") for role, col in mapping.items()
    }
    problems: list[str] = []
    passages: list[dict] = []
    first: dict[str, tuple[str, str]] = {}  # id -> (text, where)
    repeats = 0
    for where, _, cell in checked_rows(records, cells, source, problems):
        text = cell["text"]
        passage_id = cell.get("id") or text_id(text)
        if passage_id in first:
            if first[passage_id][0] != text:
                problems.append(
                    f"{source}: {where}, column {columns.text!r}: passage id {passage_id!r} has "
                    f"a different text than at {first[passage_id][1]} (one id must map to one "
                    "text)"
                )
            else:
                repeats += 1
            continue
        first[passage_id] = (text, where)
        passages.append({"id": passage_id, "text": text, "document_id": cell.get("document_id")})
    raise_problems(problems)
    if repeats:
        log.info("dropped %d repeated passage row(s) from %s", repeats, source)
    if columns.id:
        warn_shared_texts(first, source, "fetch.corpus.columns.id")
    return passages


def from_pairs(pairs: list[dict]) -> list[dict]:
    """The corpus when no knowledge base is given: the labelled chunks, once each."""
    out: dict[str, dict] = {}
    for pair in pairs:
        out.setdefault(
            pair["chunk_id"],
            {"id": pair["chunk_id"], "text": pair["positive"], "document_id": pair["document_id"]},
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
    by_id = {passage["id"]: passage for passage in passages}
    id_of_text: dict[str, str] = {}
    for passage in passages:
        id_of_text.setdefault(passage["text"], passage["id"])
    problems: list[str] = []
    new_id: dict[str, str] = {}
    doc_of: dict[str, str | None] = {}
    for pair in pairs:
        chunk = pair["chunk_id"]
        if chunk in new_id or chunk in doc_of:
            continue
        where = f"{pairs_source}: {chunk_where.get(chunk, '?')}"
        if by_text:
            found = id_of_text.get(pair["positive"])
            if found is None:
                problems.append(f"{where}: passage text not found in the corpus {corpus_source}")
                continue
            new_id[chunk] = found
        else:
            found = chunk
            if chunk not in by_id:
                problems.append(f"{where}: chunk id {chunk!r} is not in the corpus {corpus_source}")
                continue
            if by_id[chunk]["text"] != pair["positive"]:
                problems.append(
                    f"{where}: chunk id {chunk!r} has a different text in the corpus "
                    f"{corpus_source} (one chunk id must map to one text)"
                )
                continue
        doc = by_id[found]["document_id"]
        if doc is not None and pair["document_id"] is not None and doc != pair["document_id"]:
            problems.append(
                f"{where}: chunk {chunk!r} is in document {pair['document_id']!r}, but the corpus "
                f"{corpus_source} puts it in {doc!r}"
            )
        doc_of[found] = pair["document_id"]
    raise_problems(problems)
    pairs = [dict(pair, chunk_id=new_id.get(pair["chunk_id"], pair["chunk_id"])) for pair in pairs]
    passages = [
        dict(passage, document_id=doc_of.get(passage["id"]))
        if passage["document_id"] is None
        else passage
        for passage in passages
    ]
    return pairs, passages


def summary(pairs: list[dict], passages: list[dict]) -> dict[str, int]:
    """Counts for provenance and the report."""
    labelled = {pair["chunk_id"] for pair in pairs}
    if not labelled <= {passage["id"] for passage in passages}:
        raise StageError("internal error: a labelled chunk is missing from the corpus")
    return {
        "passages": len(passages),
        "labelled": len(labelled),
        "unlabelled": len(passages) - len(labelled),
    }
