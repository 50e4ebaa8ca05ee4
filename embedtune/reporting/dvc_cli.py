"""Running git and the dvc CLI for the reporting commands (lockcheck, pr_comment).

dvc runs as ``python -m dvc`` from this interpreter, so the project's pinned dvc answers
whatever ``dvc`` is first on PATH.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_command(cmd: list[str], cwd: str | Path | None, shown: str | None = None) -> str:
    """Run ``cmd`` in ``cwd`` and return its stdout; a RuntimeError naming the command
    (``shown``, default the command line) with its exit status and stderr when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        name = shown or " ".join(cmd)
        raise RuntimeError(f"`{name}` failed (exit {proc.returncode}):\n{proc.stderr.strip()}")
    return proc.stdout


def dvc(args: list[str], cwd: str | Path | None) -> str:
    """Run ``dvc <args>`` in ``cwd`` and return its stdout (errors as ``run_command``)."""
    return run_command([sys.executable, "-m", "dvc", *args], cwd, shown=" ".join(["dvc", *args]))
