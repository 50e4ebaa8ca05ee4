"""Atomic outputs and small file helpers shared by the stages: JSON reading and writing, and
hashing files by name and bytes.

DVC commits whatever sits under a declared out when a command exits 0, and deletes outs
before a rerun. Writing to a hidden temporary sibling and renaming it into place means an
interrupted stage leaves either the old complete output or nothing, never half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedtune.errors import StageError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only on success.

    The temporary name is fixed, so a run killed with SIGKILL leaves at most one stale
    temporary that the next run removes before starting.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp"
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        raise RuntimeError(f"nothing was written to {tmp} for {final}")
    _remove(final)
    os.replace(tmp, final)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically, keys in a stable order so reruns give identical bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(
            json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a missing or damaged file is a StageError that names it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise StageError(f"{path}: cannot read JSON: {exc}") from exc


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Write one JSON object per line (to a path that is already temporary)."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


READ_BLOCK = 1 << 22  # 4 MB reads when hashing: model weights can be GBs


def hash_files(digest: hashlib._Hash, root: str | Path, names_from: str | Path) -> None:
    """Feed ``digest`` every file of ``root`` (``root`` itself if it is a file), in sorted
    order: its path relative to ``names_from``, then its bytes, streamed. The same files
    give the same digest wherever ``names_from`` lives."""
    root, names_from = Path(root), Path(names_from)
    files = [root] if root.is_file() else sorted(f for f in root.rglob("*") if f.is_file())
    for f in files:
        digest.update(str(f.relative_to(names_from)).encode())
        with f.open("rb") as fh:
            while block := fh.read(READ_BLOCK):
                digest.update(block)


def folder_digest(folder: str | Path) -> str:
    """sha256 hex digest of a folder's file names (relative to it) and bytes."""
    digest = hashlib.sha256()
    hash_files(digest, folder, folder)
    return digest.hexdigest()
