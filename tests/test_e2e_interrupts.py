"""Integrity under faults with the real `dvc` CLI on the tiny profile.

Interrupts go to `dvc repro`'s whole process group, as Ctrl-C in a terminal or a job
scheduler's kill would: DVC and the stage it runs receive the signal together.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.pipeline import default_signals, env, run

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


def _set_train(repo: Path, **values) -> None:
    p = yaml.safe_load((repo / "params.yaml").read_text())
    p["train"].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in the process group. A stage can
    outlive `dvc repro` (SIGTERM kills DVC at once while the stage cleans up), and the
    next step must not race with it. Read from /proc: a zombie nobody reaps still counts
    for os.killpg(pgid, 0)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


def _written_since(path: Path, t0: int) -> bool:
    return path.is_file() and path.stat().st_mtime_ns >= t0 and path.stat().st_size > 0


# Moments in the train stage a signal can hit, each recognised by what the stage leaves on
# disk (never by elapsed time): inputs read and the trainer being built (the checkpoint
# fingerprint is stamped); optimizer steps under way (dvclive has logged a training loss);
# a checkpoint being saved (a new checkpoint folder has appeared).
def _inputs_read(ckpts: Path, t0: int, _before: set[str]) -> bool:
    return _written_since(ckpts / "fingerprint", t0)


def _training(ckpts: Path, t0: int, _before: set[str]) -> bool:
    return _written_since(ckpts / "live" / "plots" / "metrics" / "loss.tsv", t0)


def _saving(ckpts: Path, _t0: int, before: set[str]) -> bool:
    return bool({c.name for c in ckpts.glob("checkpoint-*")} - before)


def _interrupt_train(repo: Path, sig: int, moment, log: Path) -> int:
    """Start `dvc repro`, send ``sig`` to its process group at ``moment`` of the train
    stage, wait until every process of the group has ended; return dvc's exit status."""
    ckpts = repo / "checkpoints" / "train"
    before = {c.name for c in ckpts.glob("checkpoint-*")}
    t0 = time.time_ns()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["dvc", "repro"],
            cwd=repo,
            env=env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=default_signals,
        )
    try:
        # A hang guard only: the run is far longer than this, and the wait ends on an event.
        deadline = time.monotonic() + 900
        while not moment(ckpts, t0, before):
            assert proc.poll() is None, f"dvc repro ended before {moment.__name__}:\n" + (
                log.read_text()
            )
            assert time.monotonic() < deadline, f"no {moment.__name__} after 900 s"
            time.sleep(0.02)
        os.killpg(proc.pid, sig)
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired as exc:
            late = f"dvc repro still running 300 s after the signal:\n{log.read_text()}"
            raise AssertionError(late) from exc
        while _group_alive(proc.pid):
            time.sleep(0.05)
        return code
    finally:
        if _group_alive(proc.pid):
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
    """Signals at each moment of the train stage of a fresh `dvc repro`: every one exits
    non-zero, says it was interrupted, leaves dvc.lock as it was and no model (nor its
    temporary) under the declared out, and the next `dvc repro` starts cleanly. Then a
    plain `dvc repro` of a short run completes with no manual cleanup.

    The interrupted runs train for 10,000 epochs (hours), so no signal can arrive after
    training has finished, however fast the machine; the recovery trains the usual 2. (One
    chain rather than separate tests: each recovery costs a full training run.)"""
    lock = (project / "dvc.lock").read_bytes()
    try:
        _interrupt_chain(project, lock, tmp_path)
        _set_train(project, epochs=2)
        _assert_recovers(project)
    finally:  # whatever failed, later tests get the committed project back
        shutil.rmtree(project / "checkpoints", ignore_errors=True)
        run(["git", "checkout", "-q", "--", "."], project)
        run(["dvc", "checkout", "-q", "--force"], project, check=False)


def _interrupt_chain(project: Path, lock: bytes, tmp_path: Path) -> None:
    _set_train(project, learning_rate=3e-3, epochs=10_000)
    chain = (
        (signal.SIGINT, _inputs_read),
        (signal.SIGTERM, _training),
        (signal.SIGINT, _saving),
        (signal.SIGINT, _training),
        (signal.SIGKILL, _training),
    )
    for sig, moment in chain:
        log = tmp_path / "repro.log"
        code = _interrupt_train(project, sig, moment, log)
        what = f"{signal.Signals(sig).name} at {moment.__name__}:\n{log.read_text()}"
        assert code != 0, what
        if sig == signal.SIGKILL:
            assert code == -signal.SIGKILL, what
        else:
            assert "interrupted: no output was written" in log.read_text(), what
        assert (project / "dvc.lock").read_bytes() == lock, f"dvc.lock changed: {what}"
        # DVC removed the old model before running train; the stage must not have left a
        # new (partial) one, nor its temporary, in the declared out's place.
        assert not (project / "models" / "finetuned").exists(), what
        if sig != signal.SIGKILL:
            assert not (project / "models" / ".finetuned.tmp").exists(), what
