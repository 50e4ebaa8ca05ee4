"""Atomic outputs and the stage runner: an interrupt while an output is half written leaves
the previous output untouched, no temporary behind, a non-zero exit and a message. And the
file hasher: names and bytes, streamed, wherever the files live."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from embedtune import io
from tests.pipeline import ROOT, default_signals

# A stage whose main writes half an output, says so through a file, then waits to be
# signalled; the test signals it only once that file exists.
HALF_WRITTEN_STAGE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from embedtune import cli, io

    out, ready = Path(sys.argv[1]), Path(sys.argv[2])

    def main(argv):
        with io.atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "part-1").write_text("half of the new output")
            ready.write_text("writing")
            while True:
                time.sleep(1)

    raise SystemExit(cli.run_stage(main))
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_writing_keeps_the_old_output(tmp_path, sig):
    out, ready = tmp_path / "out", tmp_path / "ready"
    out.mkdir()
    (out / "model").write_text("the previous, complete output")
    proc = subprocess.Popen(
        [sys.executable, "-c", HALF_WRITTEN_STAGE, str(out), str(ready)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    try:
        while not ready.exists():  # an event, not a delay: the output is half written
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.01)
        os.kill(proc.pid, sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted: no output was written" in stderr
    assert (out / "model").read_text() == "the previous, complete output"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out", "ready"], "temporary left"


def test_success_replaces_the_output_in_one_rename(tmp_path):
    final = tmp_path / "out.json"
    final.write_text("old")
    with io.atomic_path(final) as tmp:
        tmp.write_text("new")
        assert final.read_text() == "old"  # nothing visible until the block ends
    assert final.read_text() == "new"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.json"]


def test_an_error_inside_leaves_the_old_output(tmp_path):
    final = tmp_path / "out.json"
    final.write_text("old")
    with pytest.raises(ValueError), io.atomic_path(final) as tmp:
        tmp.write_text("half")
        raise ValueError("boom")
    assert final.read_text() == "old"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.json"]


def test_a_stale_temporary_from_a_killed_run_is_cleared(tmp_path):
    (tmp_path / ".out.tmp").write_text("left by kill -9")
    with io.atomic_path(tmp_path / "out") as tmp:
        assert not tmp.exists()
        tmp.write_text("fresh")
    assert (tmp_path / "out").read_text() == "fresh"


def _folder(root):
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 32}')
    (root / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 3)
    return root


def test_folder_digest_is_names_then_bytes_in_sorted_order(tmp_path, monkeypatch):
    """The recipe, pinned: the baseline stores this digest (embedding_cache.identity) and
    mining compares it, so the bytes it hashes must not change unnoticed. Read in blocks
    smaller than the files, it gives the digest of the whole files."""
    model = _folder(tmp_path / "model")
    expected = hashlib.sha256()
    for name in ("config.json", "sub/weights.bin"):
        expected.update(name.encode())
        expected.update((model / name).read_bytes())
    monkeypatch.setattr(io, "READ_BLOCK", 7)
    assert io.folder_digest(model) == expected.hexdigest()


def test_folder_digest_follows_names_and_bytes_not_the_place(tmp_path):
    model = _folder(tmp_path / "a" / "model")
    digest = io.folder_digest(model)
    moved = tmp_path / "b" / "model"
    shutil.copytree(model, moved)
    assert io.folder_digest(moved) == digest
    (moved / "sub" / "weights.bin").rename(moved / "sub" / "other.bin")
    renamed = io.folder_digest(moved)
    assert renamed != digest
    (moved / "config.json").write_text('{"hidden_size": 33}')
    assert io.folder_digest(moved) not in (digest, renamed)


def test_hash_files_takes_a_single_file_and_names_it_from_the_given_folder(tmp_path):
    data = tmp_path / "split" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("a\n")
    digest = hashlib.sha256()
    io.hash_files(digest, data, tmp_path)
    assert digest.hexdigest() == hashlib.sha256(b"split/train.jsonl" + b"a\n").hexdigest()
    nothing = hashlib.sha256()
    io.hash_files(nothing, tmp_path / "missing", tmp_path)
    assert nothing.hexdigest() == hashlib.sha256().hexdigest()


HEAVY = ("torch", "sentence_transformers", "transformers", "sklearn", "scipy", "datasets")


def test_stage_modules_import_no_heavy_library():
    """A stage module is imported before run_stage handles interrupts: a Ctrl-C then shows
    a traceback instead of the one-line message. Keeping those imports light keeps that
    window to interpreter start-up (about 0.1 s) rather than the seconds torch takes."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[2:]: importlib.import_module(name)\n"
        "print(' '.join(h for h in sys.argv[1].split(',') if h in sys.modules))"
    )
    modules = [f"stages.{name}" for name in stages]
    out = subprocess.run(
        [sys.executable, "-c", probe, ",".join(HEAVY), *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == [], f"imported at module level by {modules}: {out}"
