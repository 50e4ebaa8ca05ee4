"""End to end: the real `dvc repro` of the whole DAG on a tiny model in a temp git repo."""

from __future__ import annotations

import json
import re

import pytest

from tests.pipeline import clone_project, output, run, set_params

pytestmark = pytest.mark.slow
METRICS = 15


def test_every_output_exists(reproduced):
    project, _ = reproduced
    for path in [
        "data/fetch/pairs.jsonl",
        "models/base/modules.json",
        "data/split/train.jsonl",
        "data/split/dev.jsonl",
        "data/split/test.jsonl",
        "data/build_ir_eval/corpus.jsonl",
        "data/build_ir_eval/test.json",
        "models/finetuned/model.safetensors",
        "metrics/baseline.json",
        "metrics/evaluate.json",
        "metrics/compare.json",
        "metrics/compare.md",
        "metrics/compare.png",
        "dvc.lock",
    ]:
        assert (project / path).is_file(), path
    assert not list(project.rglob(".*.tmp")), "temporary outputs left behind"


def test_every_metric_at_every_dim(reproduced):
    project, _ = reproduced
    for name, extra in (("baseline", METRICS), ("evaluate", 0)):
        metrics = json.loads((project / "metrics" / f"{name}.json").read_text())
        # Per dim: dense and hybrid metrics, int8 and binary ndcg@10, bytes per vector and
        # index bytes of three precisions; baseline also holds the BM25 row.
        assert len(metrics) == 3 * (2 * METRICS + 2 + 6) + extra
        for d in (32, 16, 8):
            for prefix in ("", "hybrid_", "int8_", "ubinary_"):
                assert 0 <= metrics[f"{prefix}dim_{d}_ndcg@10"] <= 1
    report = (project / "metrics" / "compare.md").read_text()
    assert "| 16    |" in report and "compare.png" in report


def test_dvc_sees_metrics_and_plots(reproduced):
    project, _ = reproduced
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project).stdout)
    files = next(iter(shown.values()))["data"]
    assert {"metrics/baseline.json", "metrics/evaluate.json", "metrics/compare.json"} <= set(files)


def test_second_repro_does_nothing(reproduced):
    project, _ = reproduced
    again = run(["dvc", "repro"], project)
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout
    status = run(["dvc", "status"], project)
    assert "up to date" in status.stdout


def _steps(stdout: str) -> tuple[int, int]:
    """(optimizer steps, world size) from train's summary line, e.g. "train: 24 optimizer
    steps in 1 s on 1 process(es); ..."."""
    found = re.search(r"train: (\d+) optimizer steps\b.*? on (\d+) process\(es\);", stdout)
    assert found, stdout
    return int(found.group(1)), int(found.group(2))


def test_two_process_ddp_inside_dvc_repro(reproduced, tmp_path):
    """train.processes: 2 relaunches the stage under torchrun (gloo on CPU); each process
    takes half the data, so the run takes about half the optimizer steps. (On a copy of the
    reproduced project, where the data stages are up to date: `dvc repro evaluate` reruns
    train and the evaluation of the model it trained.)"""
    single_steps, single_world = _steps(reproduced[1].stdout)
    project = clone_project(reproduced[0], tmp_path / "ddp")
    set_params(project, "train", processes=2)
    out = output(run(["dvc", "repro", "evaluate"], project))
    assert "Running stage 'train'" in out and "Running stage 'fetch'" not in out
    assert "launching 2 processes" in out
    steps, world = _steps(out)
    assert (single_world, world) == (1, 2)
    assert steps <= 0.6 * single_steps
    assert (project / "models" / "finetuned" / "model.safetensors").is_file()
    assert json.loads((project / "metrics" / "evaluate.json").read_text())["dim_8_ndcg@10"] >= 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_of_one_process_each_inside_dvc_repro(reproduced, tmp_path):
    """train.nodes: 2 joins two machines with torchrun's c10d rendezvous. Here two copies of
    the project stand for two machines: each runs the real `dvc repro train` with
    EMBEDTUNE_RDZV_ENDPOINT at a loopback port. They meet in one run of world size 2, each
    rank trains on its half of the data (about half the single process's optimizer steps),
    and both nodes end with the same weights in their own models/finetuned."""
    import subprocess

    import torch
    from safetensors.torch import load_file

    from tests.pipeline import default_signals, env

    single_steps, _ = _steps(reproduced[1].stdout)
    nodes = [clone_project(reproduced[0], tmp_path / f"node{i}") for i in range(2)]
    for node in nodes:
        set_params(node, "train", nodes=2)
    node_env = dict(env(), EMBEDTUNE_RDZV_ENDPOINT=f"127.0.0.1:{_free_port()}")
    procs = [
        subprocess.Popen(
            ["dvc", "repro", "train"],
            cwd=node,
            env=node_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=default_signals,
        )  # fmt: skip
        for node in nodes
    ]
    try:
        outs = [proc.communicate(timeout=900)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, out in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out
        assert "launching 1 process(es) on each of 2 nodes" in out
        steps, world = _steps(out)
        assert world == 2
        assert steps <= 0.6 * single_steps
    weights = [load_file(str(n / "models" / "finetuned" / "model.safetensors")) for n in nodes]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
