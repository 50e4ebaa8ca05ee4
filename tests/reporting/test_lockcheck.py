"""The dvc.lock check CI runs without data, against the real dvc CLI in temp repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from embedtune.reporting import lockcheck
from tests.pipeline import ROOT, env, run

GEN = """\
import json, os, yaml
x = yaml.safe_load(open("params.yaml"))["a"]["x"]
os.makedirs("data", exist_ok=True)
os.makedirs("metrics", exist_ok=True)
open("data/out.txt", "w").write(str(x))
json.dump({"score": x / 10}, open("metrics/m.json", "w"))
"""
USE = 'open("data/use.txt", "w").write(open("data/out.txt").read() * 2)\n'
DVC_YAML = {
    "stages": {
        "gen": {
            "cmd": "python gen.py",
            "deps": ["gen.py"],
            "params": ["a.x"],
            "outs": ["data/out.txt"],
            "metrics": [{"metrics/m.json": {"cache": False}}],
        },
        "use": {
            "cmd": "python use.py",
            "deps": ["use.py", "data/out.txt"],
            "outs": ["data/use.txt"],
        },
    }
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A reproduced, committed repo, then stripped of data and cache like a fresh CI checkout."""
    repo = tmp_path_factory.mktemp("lock") / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["dvc", "init", "-q"], repo)
    (repo / "gen.py").write_text(GEN)
    (repo / "use.py").write_text(USE)
    (repo / "params.yaml").write_text(yaml.safe_dump({"a": {"x": 3, "y": 1}}))
    (repo / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    run(["dvc", "repro", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "v1"], repo)
    run(["git", "clean", "-fdqX"], repo)  # every ignored file: DVC outputs and the cache
    assert not (repo / "data" / "out.txt").exists() and not (repo / ".dvc" / "cache").exists()
    return repo


@pytest.fixture
def repo(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "repo", symlinks=True))


def _check(repo: Path) -> subprocess.CompletedProcess:
    e = env()
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "embedtune.reporting.lockcheck"],
        cwd=repo,
        env=e,
        capture_output=True,
        text=True,
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_checkout_without_data_passes(repo):
    proc = _check(repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matches" in proc.stdout and "data/out.txt" in proc.stdout  # listed as not checked


def test_changed_param_fails_and_names_it(repo):
    _edit(repo / "params.yaml", "x: 3", "x: 4")
    proc = _check(repo)
    assert proc.returncode == 1 and "a.x modified" in proc.stdout


def test_param_no_stage_reads_is_ignored(repo):
    _edit(repo / "params.yaml", "y: 1", "y: 2")
    assert _check(repo).returncode == 0


def test_changed_code_fails(repo):
    (repo / "use.py").write_text(USE + "# tweak\n")
    proc = _check(repo)
    assert proc.returncode == 1 and "use.py modified" in proc.stdout


def test_changed_command_fails(repo):
    _edit(repo / "dvc.yaml", "python use.py", "python use.py --fast")
    proc = _check(repo)
    assert proc.returncode == 1 and "use: changed command" in proc.stdout


def test_hand_edited_tracked_metrics_fail(repo):
    (repo / "metrics" / "m.json").write_text('{"score": 0.99}')
    proc = _check(repo)
    assert proc.returncode == 1 and "metrics/m.json modified" in proc.stdout


def test_missing_lock_fails(repo):
    (repo / "dvc.lock").unlink()
    assert _check(repo).returncode == 1


def test_dvc_error_is_not_a_pass(repo):
    _edit(repo / "dvc.yaml", "python use.py", "python use.py\n    bogus: [")
    proc = _check(repo)
    assert proc.returncode == 2
    # The command that failed, then dvc's own words on what is wrong with dvc.yaml.
    assert "error: `dvc status --json` failed (exit 1):" in proc.stderr
    assert "dvc.yaml" in proc.stderr.split("failed", 1)[1]


def test_classify_splits_stale_from_absent():
    status = {
        "train": [
            {"changed deps": {"params.yaml": {"train.lr": "modified"}, "data/x": "deleted"}},
            {"changed outs": {"models/m": "not in cache", "metrics/m.json": "modified"}},
            "changed command",
        ]
    }
    verdict = lockcheck.classify(status)
    assert verdict.stale == [
        "train: changed deps: params.yaml: train.lr modified",
        "train: changed outs: metrics/m.json modified",
        "train: changed command",
    ]
    assert verdict.not_checked == ["train: data/x (deleted)", "train: models/m (not in cache)"]
    assert lockcheck.classify({}).stale == []
