"""Reading a data file into rows, and the checks every text and id cell gets.

Shared by fetch's pairs, the knowledge-base corpus and generate's passages: each names the
file, the row (or JSONL line) and the column of every problem, and each refuses what would
silently change the data
(a repeated column name, a repeated JSON key, NaN, non-string text).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from embedtune.errors import StageError

log = logging.getLogger(__name__)

MAX_REPORTED = 20  # problems listed in one error; the rest are counted

Record = tuple[str, dict[str, Any]]  # (where: "row 12" / "line 7", the raw row)
# role -> (column, kind): a text cell must be a non-empty string (kept stripped), an id cell
# a string or an integer (kept as a string).
Cells = dict[str, tuple[str, Literal["text", "id"]]]


def read_records(path: Path) -> list[Record]:
    """Read a .csv / .tsv (optionally .gz) / .jsonl / .parquet file into (location, row)
    records. Row numbers count data rows from 1, as a spreadsheet shows them after the
    header."""
    if not path.is_file():
        raise StageError(f"{path}: file not found")
    name = path.name.lower()
    try:
        if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
            import pandas as pd

            # Everything as text and no NA guessing: "NA" or "null" may be a real question.
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                encoding="utf-8-sig",
                sep="\t" if ".tsv" in name else ",",
            )
            frame.columns = _unique_header(path, _csv_header(path, name), len(frame.columns))
            return [(f"row {i + 1}", r) for i, r in enumerate(frame.to_dict("records"))]
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            return list(_read_jsonl(path))
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            _unique_header(path, table.column_names, table.num_columns)
            rows = table.to_pylist()
            return [(f"row {i + 1}", r) for i, r in enumerate(rows)]
    except StageError:
        raise
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise StageError(f"{path}: cannot parse file: {exc}") from exc
    raise StageError(
        f"{path}: unsupported file type (want .csv, .tsv, .jsonl, each optionally .gz, or .parquet)"
    )


def _csv_header(path: Path, name: str) -> list[str]:
    """The header row as written: pandas renames a repeated name (``anchor``, ``anchor.1``),
    which would silently keep one of two columns under the mapped name."""
    import pandas as pd

    head = pd.read_csv(
        path,
        header=None,
        nrows=1,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",
        sep="\t" if ".tsv" in name else ",",
    )
    return [str(c) for c in head.iloc[0]] if len(head) else []


def _unique_header(path: Path, names: list[str], expected: int) -> list[str]:
    """Stripped column names; an error naming the file and the column when one repeats."""
    names = [n.strip() for n in names]
    seen: dict[str, int] = {}
    for i, col in enumerate(names, start=1):
        if col in seen:
            raise StageError(
                f"{path}: header: column {col!r} appears twice (columns {seen[col]} and {i}); "
                "rename one so each column has one name"
            )
        seen[col] = i
    if len(names) != expected:
        raise StageError(f"{path}: header: {len(names)} names for {expected} columns")
    return names


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads hook: a repeated key in one object is an error, not "last one wins"."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _read_jsonl(path: Path) -> Iterable[Record]:
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=_no_repeated_keys)
            except json.JSONDecodeError as exc:
                raise StageError(f"{path}: line {n}: malformed JSON: {exc.msg}") from exc
            except ValueError as exc:
                raise StageError(f"{path}: line {n}: {exc}") from exc
            if not isinstance(row, dict):
                raise StageError(f"{path}: line {n}: expected a JSON object")
            yield f"line {n}", row


def text_problem(value: Any) -> str:
    """Return the problem with a text cell, or '' when it is a usable string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing value (None/NaN)"
    if not isinstance(value, str):
        return f"expected text, got {type(value).__name__} {value!r}"
    if not value.strip():
        return "empty or whitespace-only text"
    return ""


def ident(value: Any) -> tuple[str | None, str]:
    """Normalise an id cell (string or integer) to a string; return (id, problem)."""
    if isinstance(value, bool):
        return None, f"expected an id, got bool {value!r}"
    if isinstance(value, int):
        return str(value), ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)), ""
    problem = text_problem(value)
    return (None, problem) if problem else (value.strip(), "")


def checked_rows(
    records: Iterable[Record], cells: Cells, source: str, problems: list[str]
) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """Check the mapped ``cells`` of every record, in ``cells`` order; yield (where, raw
    row, role -> clean value) for each row whose cells are all usable.

    A bad cell adds ``"<source>: <where>, column '<col>': <problem>"`` to ``problems`` and
    its row is not yielded. Lazy on purpose: the caller's own checks of a yielded row add
    their problems in row order, between those of the rows around it."""
    for where, row in records:
        values: dict[str, str] = {}
        for role, (column, kind) in cells.items():
            if kind == "text":
                problem = text_problem(row.get(column))
                value = "" if problem else row[column].strip()
            else:
                value, problem = ident(row.get(column))
            if problem:
                problems.append(f"{source}: {where}, column {column!r}: {problem}")
            else:
                values[role] = value
        if len(values) == len(cells):
            yield where, row, values


def text_id(text: str) -> str:
    """A stable chunk id for data without one: the passage's own text identifies it."""
    return "t" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def raise_problems(problems: list[str]) -> None:
    """One error listing the first MAX_REPORTED problems and counting the rest."""
    if not problems:
        return
    more = f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    raise StageError(
        f"{len(problems)} invalid row(s):\n" + "\n".join(problems[:MAX_REPORTED]) + more
    )


def require_columns(records: list[Record], mapping: dict[str, str], source: str) -> None:
    """Every mapped column must exist (checked on the first row: all rows share a header)."""
    if not records:
        raise StageError(f"{source}: no rows")
    present = set(records[0][1])
    for role, col in mapping.items():
        if col not in present:
            raise StageError(
                f"{source}: column {col!r} (mapped to {role}) not found; "
                f"columns are: {', '.join(sorted(map(str, present)))}"
            )


def warn_shared_texts(id_text: dict[str, tuple[str, str]], source: str, key: str) -> None:
    """Say when one passage text sits under several ids (``id_text``: id -> (text, where)):
    in a unique-passage corpus those become separate entries, and retrieving the "other"
    copy counts as a miss."""
    by_text: dict[str, list[str]] = {}
    for text, where in id_text.values():
        by_text.setdefault(text, []).append(where)
    shared = [places for places in by_text.values() if len(places) > 1]
    if shared:
        log.warning(
            "%d passage text(s) in %s appear under more than one id (first at %s); each copy "
            "is a separate corpus entry. Set %s: null to identify passages by text.",
            len(shared),
            source,
            " and ".join(shared[0][:2]),
            key,
        )
