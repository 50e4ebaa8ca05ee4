"""Check the hand-written case files and assemble the bundled legal sample.

The sample is written as one JSON file per fictional opinion under ``sample/cases/`` (easy
to review in a pull request) and assembled into ``sample/legal_sample.csv.gz``, the file the
fetch stage's ``sample`` source reads. Columns match the reference dataset so one column
mapping serves both.

    python sample/build.py --check sample/cases/some_case.json   # check one file
    python sample/build.py                                        # check all, write the .csv.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COLUMNS = [
    "question",
    "text",
    "chunk_id",
    "case_name",
    "date_filed",
    "court",
    "question_id",
    "answer_location",
    "global_chunk_id",
]
# The knowledge base: every passage of every opinion, labelled or not.
KB_COLUMNS = ["global_chunk_id", "text", "chunk_id", "section", "case_name", "date_filed", "court"]
LOCATIONS = {"beginning", "middle", "end", "throughout"}
MIN_WORDS, MAX_WORDS = 120, 250
MIN_Q, MAX_Q = 3, 6


def check_case(path: Path) -> tuple[dict, list[str]]:
    """Return the parsed case and a list of problems (empty when the file is sound).

    Files under ``kb/`` are knowledge-base opinions: passages nobody wrote questions for,
    which the evaluation searches beside the labelled ones (as a real knowledge base holds
    far more passages than anyone labels); they must carry no questions."""
    labelled = path.parent.name != "kb"
    problems: list[str] = []
    try:
        case = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {}, [f"{path}: cannot read JSON: {exc}"]
    for key in ("case_name", "court", "date_filed", "chunks"):
        if not case.get(key):
            problems.append(f"{path}: missing or empty key {key!r}")
    if problems:
        return case, problems
    seen_q: set[str] = set()
    seen_t: set[str] = set()
    for i, chunk in enumerate(case["chunks"]):
        where = f"{path}: chunk {i}"
        text = (chunk.get("text") or "").strip()
        words = len(text.split())
        if not MIN_WORDS <= words <= MAX_WORDS:
            problems.append(f"{where}: {words} words, want {MIN_WORDS}-{MAX_WORDS}")
        if text in seen_t:
            problems.append(f"{where}: duplicated text")
        seen_t.add(text)
        if not chunk.get("section"):
            problems.append(f"{where}: missing 'section'")
        qs = chunk.get("questions") or []
        if not labelled:
            if "questions" in chunk:
                problems.append(f"{where}: a knowledge-base passage carries no 'questions'")
            continue
        if not MIN_Q <= len(qs) <= MAX_Q:
            problems.append(f"{where}: {len(qs)} questions, want {MIN_Q}-{MAX_Q}")
        for j, q in enumerate(qs):
            qt = (q.get("question") or "").strip()
            if not qt.endswith("?"):
                problems.append(f"{where} question {j}: should be a question ending in '?'")
            if qt.lower() in seen_q:
                problems.append(f"{where} question {j}: duplicated question {qt!r}")
            seen_q.add(qt.lower())
            if q.get("answer_location") not in LOCATIONS:
                problems.append(f"{where} question {j}: answer_location not in {sorted(LOCATIONS)}")
    return case, problems


def to_rows(cases: list[dict]) -> list[dict]:
    """Flatten cases into reference-shaped rows with stable ids."""
    rows = []
    global_chunk = 0
    question_id = 0
    for case in cases:
        for chunk_id, chunk in enumerate(case["chunks"]):
            for q in chunk["questions"]:
                rows.append(
                    {
                        "question": q["question"].strip(),
                        "text": chunk["text"].strip(),
                        "chunk_id": chunk_id,
                        "case_name": case["case_name"],
                        "date_filed": case["date_filed"],
                        "court": case["court"],
                        "question_id": question_id,
                        "answer_location": q["answer_location"],
                        "global_chunk_id": global_chunk,
                    }
                )
                question_id += 1
            global_chunk += 1
    return rows


def to_kb_rows(cases: list[dict], kb_cases: list[dict]) -> list[dict]:
    """Every passage once, labelled ones first under the ids ``to_rows`` gives them, then
    the knowledge-base opinions' passages under the ids that follow."""
    rows = []
    for case in [*cases, *kb_cases]:
        for chunk_id, chunk in enumerate(case["chunks"]):
            rows.append(
                {
                    "global_chunk_id": len(rows),
                    "text": chunk["text"].strip(),
                    "chunk_id": chunk_id,
                    "section": chunk["section"],
                    "case_name": case["case_name"],
                    "date_filed": case["date_filed"],
                    "court": case["court"],
                }
            )
    return rows


def write_csv_gz(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Deterministic bytes: mtime=0 and no file name in the gzip header keep rebuilds of
    the same content identical, wherever the file is written."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buf.getvalue().encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, nargs="*", help="only check these case files")
    parser.add_argument("--out", type=Path, default=HERE / "legal_sample.csv.gz")
    parser.add_argument("--kb-out", type=Path, default=HERE / "legal_kb.csv.gz")
    args = parser.parse_args(argv)
    paths = args.check or [
        *sorted((HERE / "cases").glob("*.json")),
        *sorted((HERE / "kb").glob("*.json")),
    ]
    cases, kb_cases, problems = [], [], []
    for path in paths:
        case, found = check_case(path)
        problems += found
        (kb_cases if path.parent.name == "kb" else cases).append(case)
        if case.get("chunks"):
            n_q = sum(len(c.get("questions") or []) for c in case["chunks"])
            print(f"{path.name}: {len(case['chunks'])} chunks, {n_q} questions")
    all_q = [
        q["question"].strip().lower()
        for c in cases
        for ch in c.get("chunks", [])
        for q in ch.get("questions", [])
    ]
    if len(all_q) != len(set(all_q)):
        problems.append("a question is duplicated across case files")
    for p in problems:
        print("PROBLEM", p, file=sys.stderr)
    if problems:
        return 1
    if args.check:
        return 0
    rows = to_rows(cases)
    write_csv_gz(args.out, COLUMNS, rows)
    n_chunks = len({r["global_chunk_id"] for r in rows})
    print(f"wrote {args.out}: {len(rows)} rows, {n_chunks} chunks, {len(cases)} cases")
    kb = to_kb_rows(cases, kb_cases)
    texts = [r["text"] for r in kb]
    if len(set(texts)) != len(texts):
        print("PROBLEM a passage text appears twice across case files", file=sys.stderr)
        return 1
    write_csv_gz(args.kb_out, KB_COLUMNS, kb)
    print(
        f"wrote {args.kb_out}: {len(kb)} passages ({len(kb) - n_chunks} without questions), "
        f"{len(cases) + len(kb_cases)} opinions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
