"""kill -9 mid-training, then `dvc repro train`: training resumes from the newest complete
checkpoint and ends with weights bit-identical to an uninterrupted run's (CPU, tiny model)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.pipeline import env, make_project, output, run, tiny_params
from tests.tiny import toy_rows, write_csv

pytestmark = pytest.mark.slow

TRAIN = [
    sys.executable,
    "-m",
    "stages.train",
    "--model",
    "models/base",
    "--split",
    "data/split",
    "--ir",
    "data/build_ir_eval",
    "--corpus",
    "data/fetch/corpus.jsonl",
    "--source",
    "data/fetch/source.json",
]


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_killed_training_resumes_to_identical_weights(tmp_path, tiny_model_dir):
    data = write_csv(tmp_path / "pairs.csv", toy_rows(100, 3))
    p = tiny_params(tiny_model_dir, data)
    p["train"].update(epochs=3, logging_steps=10)
    project = make_project(tmp_path / "project", p)
    run(["dvc", "repro", "build_ir_eval"], project)

    # Reference: the same stage command, uninterrupted, in its own folders.
    run(
        [*TRAIN, "--out", "models/reference", "--live", "live-ref", "--checkpoints", "ckpt-ref"],
        project,
    )

    proc = subprocess.Popen(
        [
            *TRAIN,
            "--out",
            "models/finetuned",
            "--live",
            "metrics/train",
            "--checkpoints",
            "checkpoints/train",
        ],
        cwd=project,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpts = project / "checkpoints" / "train"
    deadline = time.time() + 300
    while not list(ckpts.glob("checkpoint-*/.complete")) and proc.poll() is None:
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert not (project / "models" / "finetuned").exists()

    # A checkpoint being written when the kill came: newer, but without its marker.
    half = ckpts / "checkpoint-999999"
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"truncated")

    # The stage that resumes, with what it needs (the later stages add nothing checked here).
    resumed = output(run(["dvc", "repro", "train"], project))
    assert (
        "resuming from" in resumed
        and "checkpoint-999999" not in resumed.split("resuming from")[1].splitlines()[0]
    )
    ours, ref = (
        _weights(project / "models" / "finetuned"),
        _weights(project / "models" / "reference"),
    )
    assert ours.keys() == ref.keys()
    for name in ref:
        assert ours[name].equal(ref[name]), name
    assert not ckpts.exists(), "checkpoints are removed once training has finished"
