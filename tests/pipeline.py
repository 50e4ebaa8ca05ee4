"""Helpers for end-to-end tests: a temp git+DVC copy of the project on a tiny profile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    "stages",
    "embedtune",
    "sample",
    "prompts",  # generate's prompt template
    "documents",  # the optional chunk/generate pipeline (dvc.yaml.off: DVC ignores it)
]


def tiny_params(model_dir: Path, data_path: Path) -> dict:
    """The default profile shrunk to the tiny model and toy data."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["common"].update(dims=[32, 16, 8], max_seq_length=64, eval_batch_size=16)
    p["common"]["model"].update(source="local", package=None, path=str(model_dir))
    p["fetch"].update(source="file", path=str(data_path))
    # The toy pairs are their own knowledge base unless a test gives one.
    p["fetch"]["corpus"].update(source="pairs", path=str(data_path))
    p["train"].update(
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        logging_steps=2,
        best_metric="eval_dim_16_cosine_ndcg@10",
    )
    return p


def env() -> dict:
    """Environment for the dvc CLI: this interpreter's bin first, never the network."""
    e = dict(os.environ)
    e["PATH"] = str(Path(sys.executable).parent) + os.pathsep + e.get("PATH", "")
    e.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@e",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@e",
        DVC_NO_ANALYTICS="1",
        PYTHONUNBUFFERED="1",
    )
    # Under pytest-xdist (`make test`: a worker per core) the stages of each worker get their
    # share of the cores: two stages of two torch threads each on two cores spend their time
    # waiting for each other. (The workers' own torch keeps its default: with one thread,
    # test_losses.py's in-batch duplicate gets bit-identical embeddings and GIST's strict
    # `>` keeps it, so that test fails.)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        e.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    return e


def default_signals() -> None:
    """``preexec_fn`` for a process a test will signal: SIGINT back to its default.

    A command started with ``&`` from a script (a CI job, ``nohup``) inherits SIGINT
    *ignored*, and Python keeps an ignored SIGINT ignored, so a test's Ctrl-C would never
    reach dvc or the stage. This gives the child what a terminal gives it."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def output(proc: subprocess.CompletedProcess) -> str:
    """Everything a command printed: dvc's own lines and the stages' results on stdout, the
    stages' log lines (progress, warnings) on stderr."""
    return proc.stdout + proc.stderr


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def make_project(dest: Path, params: dict) -> Path:
    """Copy the project's pipeline files into ``dest``, init git and DVC, commit."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["dvc", "init", "-q"], dest)
    run(["dvc", "config", "core.analytics", "false"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "init"], dest)
    return dest


def clone_project(src: Path, dest: Path) -> Path:
    """A working copy of a reproduced, committed project: its git history (main only), its
    DVC cache and its committed outputs checked out. A test that only changes one stage's
    params reruns that stage and what follows, not the whole DAG."""
    run(["git", "clone", "-q", "-b", "main", str(src), str(dest)], src.parent)
    shutil.copytree(src / ".dvc" / "cache", dest / ".dvc" / "cache")
    run(["dvc", "checkout", "-q"], dest)
    return dest


def set_params(project: Path, section: str, **values) -> dict:
    """Update one section of ``project``'s params.yaml; returns the whole params."""
    p = yaml.safe_load((project / "params.yaml").read_text())
    p[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return p
