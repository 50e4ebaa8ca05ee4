"""End to end: a grid of experiments queued and run by several DVC queue workers."""

from __future__ import annotations

import json
import time

import pytest

from tests.pipeline import run

pytestmark = pytest.mark.slow


@pytest.fixture
def project(reproduced):
    """The shared reproduced tiny project (tests/conftest.py), left as committed."""
    return reproduced[0]


def _queue_idle(project) -> bool:
    status = run(["dvc", "queue", "status"], project).stdout
    return not any(word in status for word in ("Queued", "Running"))


def test_a_queued_two_by_two_grid_runs_on_two_workers(project):
    """The sweep the README shows: a 2x2 grid queued with `dvc exp run --queue -S`, run by
    `dvc queue start -j 2`, all four read back from `dvc exp show --json`."""
    run(
        ["dvc", "exp", "run", "--queue", "-S", "train.learning_rate=2e-3,4e-3",
         "-S", "train.batch_size=4,8"],
        project,
    )  # fmt: skip
    assert run(["dvc", "queue", "status"], project).stdout.count("Queued") == 4
    run(["dvc", "queue", "start", "-j", "2"], project)
    deadline = time.monotonic() + 1200
    while not _queue_idle(project):
        assert time.monotonic() < deadline, run(["dvc", "queue", "status"], project).stdout
        time.sleep(2)
    status = run(["dvc", "queue", "status"], project).stdout
    assert status.count("Success") == 4, status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for r in exp["revs"]:
                data = r["data"]
                train = data["params"]["params.yaml"]["data"]["train"]
                metrics = data["metrics"]["metrics/evaluate.json"]["data"]
                found[(train["learning_rate"], train["batch_size"])] = metrics["dim_8_ndcg@10"]
    grid = {(lr, bs) for lr in (2e-3, 4e-3) for bs in (4, 8)}
    assert set(found) == grid, sorted(found)
    assert all(0 <= v <= 1 for v in found.values())
    run(["dvc", "queue", "stop"], project)
    # The queue ran in temporary copies: the workspace still holds the committed version.
    assert run(["git", "status", "--porcelain"], project).stdout.strip() == ""
