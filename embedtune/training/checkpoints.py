"""Resumable training checkpoints, tied to the exact run that wrote them.

The checkpoint folder lives outside DVC's outs (DVC deletes those before a rerun), so it can
outlive a change of data, params or base model: a fingerprint of all three decides whether
its checkpoints may be resumed, and a completion marker tells a fully saved checkpoint from
one cut short by a kill.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from embedtune import config, io

log = logging.getLogger(__name__)

COMPLETE = ".complete"  # written after the trainer has fully saved a checkpoint


def fingerprint(conf: config.Params, files: list[Path]) -> str:
    """Identity of a training run: params that shape it plus the bytes of its inputs.
    A checkpoint with another fingerprint belongs to another run and must not be resumed."""
    digest = hashlib.sha256(json.dumps([repr(conf.train), repr(conf.common)]).encode())
    for root in files:
        io.hash_files(digest, root, root.parent)  # names below the input: the project may move
    return digest.hexdigest()


def latest_complete_checkpoint(folder: Path) -> Path | None:
    """Newest checkpoint-N with its completion marker; a half-written one is skipped."""
    found = [c for c in folder.glob("checkpoint-*") if (c / COMPLETE).is_file()]
    return max(found, key=lambda c: int(c.name.split("-")[1]), default=None)


def prepare_checkpoints(folder: Path, fp: str) -> Path | None:
    """Keep the folder only if it belongs to this exact run; return where to resume."""
    stamp = folder / "fingerprint"
    if folder.exists() and (not stamp.is_file() or stamp.read_text() != fp):
        log.info("discarding checkpoints in %s: they come from other data/params/model", folder)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fp)
    resume = latest_complete_checkpoint(folder)
    if resume:
        log.info("resuming from %s", resume)
    return resume
