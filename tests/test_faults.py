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

from tests.pipeline import env, make_project, run, tiny_params

pytestmark = pytest.mark.slow

DETERMINISTIC = ("data/fetch", "data/split", "data/build_ir_eval")


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    """A reproduced and committed tiny project; each test leaves it reproduced again."""
    from tests.tiny import toy_rows, write_csv

    root = tmp_path_factory.mktemp("faults")
    data = write_csv(root / "pairs.csv", toy_rows(60, 3))
    p = tiny_params(tiny_model_dir, data)
    # Enough steps that the train stage is still running when the signal comes.
    p["train"].update(epochs=3, batch_size=4)
    repo = make_project(root / "project", p)
    run(["dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "reproduced"], repo)
    return repo


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
    # checkpoints/train appears when the stage has read its inputs and starts the trainer.
    while not (repo / "checkpoints" / "train").exists():
        assert proc.poll() is None, log.read_text()
        assert time.time() < deadline, "the train stage never started"
        time.sleep(0.05)
    time.sleep(1.0)
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_leaves_no_partial_output(project, tmp_path, sig):
    lock = (project / "dvc.lock").read_bytes()
    _set_learning_rate(project, 3e-3)
    code = _interrupt_train(project, sig, tmp_path)
    assert code != 0, (tmp_path / "repro.log").read_text()
    assert (project / "dvc.lock").read_bytes() == lock, "dvc.lock changed by a failed run"
    # DVC removed the old model before running train; the stage must not have left a new
    # (partial) one, nor its temporary, in the declared out's place.
    assert not (project / "models" / "finetuned").exists()
    assert not (project / "models" / ".finetuned.tmp").exists()
    _assert_recovers(project)


def test_kill_9_then_repro_needs_no_cleanup(project, tmp_path):
    lock = (project / "dvc.lock").read_bytes()
    _set_learning_rate(project, 5e-3)
    code = _interrupt_train(project, signal.SIGKILL, tmp_path)
    assert code == -signal.SIGKILL
    assert (project / "dvc.lock").read_bytes() == lock
    assert not (project / "models" / "finetuned").exists()
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
