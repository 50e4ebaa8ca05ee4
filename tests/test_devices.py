"""embedtune.devices: the precision chosen for each device."""

from __future__ import annotations

import pytest

from embedtune.devices import precision_settings
from embedtune.errors import StageError


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
