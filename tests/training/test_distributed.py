"""embedtune.training.distributed: the precision chosen for each device."""

from __future__ import annotations

import pytest

from embedtune.errors import StageError
from embedtune.training.distributed import precision_settings


@pytest.mark.parametrize(
    ("choice", "cuda", "bf16", "expect"),
    [
        ("auto", False, False, {"bf16": False, "fp16": False, "optim": "adamw_torch"}),
        ("auto", True, True, {"bf16": True, "tf32": True, "optim": "adamw_torch_fused"}),
        ("auto", True, False, {"fp16": True, "bf16": False}),
        ("fp32", True, True, {"bf16": False, "fp16": False}),
    ],
)
def test_precision_follows_the_device(choice, cuda, bf16, expect):
    got = precision_settings(choice, cuda, bf16)
    assert {k: got[k] for k in expect} == expect


@pytest.mark.parametrize(
    ("choice", "cuda", "bf16"),
    [("bf16", False, False), ("fp16", False, False), ("bf16", True, False)],
)
def test_impossible_precision_is_a_params_error(choice, cuda, bf16):
    with pytest.raises(StageError, match="train.precision"):
        precision_settings(choice, cuda, bf16)


def test_one_node_runs_torchrun_standalone():
    from embedtune.training.distributed import torchrun_command

    cmd = torchrun_command(2, 1, "stages.train", ["--x"], "abc")
    assert "--standalone" in cmd and "--nproc-per-node=2" in cmd
    assert cmd[-3:] == ["-m", "stages.train", "--x"]


def test_several_nodes_meet_at_the_endpoint_under_the_run_id(monkeypatch):
    from embedtune.training.distributed import RDZV_ENV, torchrun_command

    monkeypatch.setenv(RDZV_ENV, "10.0.0.1:29400")
    cmd = torchrun_command(4, 2, "stages.train", [], "fp123")
    assert "--standalone" not in cmd
    for arg in ("--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
                "--rdzv-endpoint=10.0.0.1:29400", "--rdzv-id=fp123"):  # fmt: skip
        assert arg in cmd


def test_several_nodes_without_an_endpoint_is_a_clear_error(monkeypatch):
    from embedtune.training.distributed import RDZV_ENV, torchrun_command

    monkeypatch.delenv(RDZV_ENV, raising=False)
    with pytest.raises(StageError, match=f"train.nodes.*{RDZV_ENV}"):
        torchrun_command(1, 2, "stages.train", [], "fp")
