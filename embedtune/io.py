"""Atomic outputs and small file helpers shared by the stages.

DVC commits whatever sits under a declared out when a command exits 0, and deletes outs
before a rerun. Writing to a hidden temporary sibling and renaming it into place means an
interrupted stage leaves either the old complete output or nothing, never half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
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
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Write one JSON object per line (to a path that is already temporary)."""
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _raise_interrupt(signum: int, _frame: Any) -> None:
    # SIGTERM would otherwise end Python without unwinding, skipping the cleanup of
    # temporary outputs; turning it into KeyboardInterrupt runs every `finally`.
    raise KeyboardInterrupt(f"signal {signum}")


def run_stage(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Run a stage's main: user errors print one clear line; interrupts exit non-zero."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main(argv)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        return 130
    return 0
