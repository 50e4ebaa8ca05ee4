"""Integrity under faults, and experiments, with the real `dvc` CLI on the tiny profile.

Interrupts go to `dvc repro`'s whole process group, as Ctrl-C in a terminal or a job
scheduler's kill would: DVC and the stage it runs receive the signal together.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.pipeline import env, run

pytestmark = pytest.mark.slow

DETERMINISTIC = ("data/fetch", "data/split", "data/build_ir_eval")


@pytest.fixture
def project(reproduced):
    """The shared reproduced tiny project (tests/conftest.py); each test leaves it as
    committed."""
    return reproduced[0]


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _set_learning_rate(repo: Path, lr: float) -> None:
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["train"]["learning_rate"] = lr
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _interrupt_train(repo: Path, sig: int, tmp_path: Path) -> int:
    """Start `dvc repro`, send ``sig`` to its process group once training is under way,
    return the exit status."""
    log = tmp_path / "repro.log"
    started = time.time_ns()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["dvc", "repro"],
            cwd=repo,
            env=env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.time() + 240
    # The stage stamps checkpoints/train/fingerprint when it has read its inputs and is about
    # to start the trainer (the folder itself outlives an interrupted run, for resume).
    stamp = repo / "checkpoints" / "train" / "fingerprint"
    while not (stamp.is_file() and stamp.stat().st_mtime_ns >= started):
        assert proc.poll() is None, log.read_text()
        assert time.time() < deadline, "the train stage never started"
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "train finished before the signal: make the run longer"
    os.killpg(proc.pid, sig)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def _assert_recovers(repo: Path) -> None:
    """A plain `dvc repro` finishes the job, with no manual cleanup, and leaves dvc clean."""
    run(["dvc", "repro"], repo)
    assert (repo / "models" / "finetuned" / "model.safetensors").is_file()
    status = json.loads(run(["dvc", "status", "--json"], repo).stdout or "{}")
    assert status == {}, status
    run(["git", "checkout", "-q", "--", "."], repo)  # back to the committed version
    run(["dvc", "checkout", "-q"], repo)


def test_fetch_split_and_build_ir_eval_are_deterministic(project):
    first = {out: _digest(project / out) for out in DETERMINISTIC}
    run(["dvc", "repro", "-f", "-s", "fetch", "split", "build_ir_eval"], project)
    second = {out: _digest(project / out) for out in DETERMINISTIC}
    assert first == second
    assert all(first.values()), "nothing was compared"
    assert run(["git", "diff", "--quiet", "dvc.lock"], project, check=False).returncode == 0


def test_interrupts_leave_no_partial_output_and_repro_recovers(project, tmp_path):
    """SIGINT, then SIGTERM, then SIGKILL, each during the train stage of a fresh
    `dvc repro`: every one exits non-zero, leaves dvc.lock as it was and no model (nor its
    temporary) under the declared out, and the next `dvc repro` starts cleanly. After the
    last, a plain `dvc repro` completes with no manual cleanup. (One chain rather than three
    tests: each recovery costs a full training run.)"""
    lock = (project / "dvc.lock").read_bytes()
    _set_learning_rate(project, 3e-3)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        code = _interrupt_train(project, sig, tmp_path)
        name = signal.Signals(sig).name
        assert code != 0, (name, (tmp_path / "repro.log").read_text())
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert "interrupted: no output was written" in (tmp_path / "repro.log").read_text()
        assert (project / "dvc.lock").read_bytes() == lock, f"{name}: dvc.lock changed"
        # DVC removed the old model before running train; the stage must not have left a
        # new (partial) one, nor its temporary, in the declared out's place.
        assert not (project / "models" / "finetuned").exists(), name
        if sig != signal.SIGKILL:
            assert not (project / "models" / ".finetuned.tmp").exists(), name
    _assert_recovers(project)


def test_two_experiments_read_back_from_exp_show(project):
    names = {}
    for lr in (2e-3, 4e-3):
        out = run(["dvc", "exp", "run", "-S", f"train.learning_rate={lr}"], project).stdout
        names[lr] = next(
            line.split(":", 1)[1].strip() for line in out.splitlines() if "Ran experiment" in line
        )
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for r in exp["revs"]:
                data = r["data"]
                lr = data["params"]["params.yaml"]["data"]["train"]["learning_rate"]
                metrics = data["metrics"]["metrics/finetuned.json"]["data"]
                found[r["name"]] = (lr, metrics["dim_8_ndcg@10"])
    for lr, name in names.items():
        assert name in found, (name, sorted(found))
        assert found[name][0] == pytest.approx(lr)
        assert 0 <= found[name][1] <= 1
    # The workspace is left on the last experiment; the committed version is still intact.
    run(["git", "checkout", "-q", "--", "."], project)
    run(["dvc", "checkout", "-q"], project)
