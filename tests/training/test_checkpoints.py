"""Resumable checkpoints: the fingerprint follows exactly what shapes a run, and only a
fully saved checkpoint of this very run is resumed."""

from __future__ import annotations

import shutil

from embedtune import config
from embedtune.training.checkpoints import (
    COMPLETE,
    fingerprint,
    latest_complete_checkpoint,
    prepare_checkpoints,
)


def _checkpoint(folder, step, complete=True):
    ckpt = folder / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    if complete:
        (ckpt / COMPLETE).write_text("ok")
    return ckpt


def test_fingerprint_follows_params_and_input_bytes(tmp_path):
    conf = config.load("params.yaml")
    data = tmp_path / "train.jsonl"
    data.write_text("a\n")
    first = fingerprint(conf, [data])
    assert first == fingerprint(conf, [data])
    other = config.replace(conf, train=config.replace(conf.train, learning_rate=1.0))
    assert fingerprint(other, [data]) != first
    other = config.replace(conf, common=config.replace(conf.common, seed=conf.common.seed + 1))
    assert fingerprint(other, [data]) != first
    data.write_text("b\n")
    assert fingerprint(conf, [data]) != first


def test_fingerprint_ignores_other_stages_params_and_where_the_project_lives(tmp_path):
    conf = config.load("params.yaml")
    model = tmp_path / "a" / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    first = fingerprint(conf, [model])
    # split's params reach training only through the split's bytes, which are hashed.
    other = config.replace(conf, split=config.replace(conf.split, test_size=0.5))
    assert fingerprint(other, [model]) == first
    moved = tmp_path / "b" / "model"
    shutil.copytree(model, moved)
    assert fingerprint(conf, [moved]) == first


def test_fingerprint_sees_a_changed_or_renamed_file_inside_a_folder(tmp_path):
    conf = config.load("params.yaml")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    first = fingerprint(conf, [model])
    (model / "sub" / "weights.bin").write_bytes(b"\x00\x02")
    changed = fingerprint(conf, [model])
    assert changed != first
    (model / "sub" / "weights.bin").rename(model / "sub" / "other.bin")
    assert fingerprint(conf, [model]) not in (first, changed)


def test_latest_complete_checkpoint_skips_a_newer_half_written_one(tmp_path):
    _checkpoint(tmp_path, 20)
    _checkpoint(tmp_path, 100)  # numerically newest: a name sort would pick checkpoint-20
    _checkpoint(tmp_path, 300, complete=False)
    assert latest_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-100"


def test_latest_complete_checkpoint_is_none_without_a_complete_one(tmp_path):
    assert latest_complete_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 10, complete=False)
    assert latest_complete_checkpoint(tmp_path) is None


def test_checkpoints_of_another_run_are_discarded(tmp_path, library_log):
    folder = tmp_path / "ckpt"
    _checkpoint(folder, 5)
    (folder / "fingerprint").write_text("old-run")
    assert prepare_checkpoints(folder, "new-run") is None
    assert library_log.messages == [
        f"discarding checkpoints in {folder}: they come from other data/params/model"
    ]
    assert not (folder / "checkpoint-5").exists()
    assert (folder / "fingerprint").read_text() == "new-run"


def test_checkpoints_without_a_fingerprint_are_discarded(tmp_path):
    folder = tmp_path / "ckpt"
    _checkpoint(folder, 5)
    assert prepare_checkpoints(folder, "run") is None
    assert not (folder / "checkpoint-5").exists()


def test_the_same_run_resumes_from_its_newest_complete_checkpoint(tmp_path, library_log):
    folder = tmp_path / "ckpt"
    for step, complete in ((10, True), (20, True), (30, False)):
        _checkpoint(folder, step, complete)
    (folder / "fingerprint").write_text("run")
    assert prepare_checkpoints(folder, "run") == folder / "checkpoint-20"
    assert (folder / "checkpoint-30").is_dir()  # kept: the trainer overwrites it
    # Logged without a stage name: the stage's handler adds it (embedtune.cli).
    assert library_log.messages == [f"resuming from {folder / 'checkpoint-20'}"]


def test_a_fresh_run_gets_a_stamped_empty_folder(tmp_path):
    folder = tmp_path / "ckpt"
    assert prepare_checkpoints(folder, "run") is None
    assert (folder / "fingerprint").read_text() == "run"
