"""Where training runs: precision for the device, and the torchrun (DDP) process roles."""

from __future__ import annotations

import os
import subprocess
import sys

from embedtune.errors import StageError


def precision_settings(choice: str, cuda: bool, bf16_ok: bool) -> dict:
    """Trainer arguments for the requested precision on this device: bf16 + tf32 and fused
    AdamW on a CUDA GPU that has bf16, fp16 on older GPUs, fp32 on CPU."""
    if choice == "auto":
        choice = ("bf16" if bf16_ok else "fp16") if cuda else "fp32"
    if choice in ("bf16", "fp16") and not cuda:
        raise StageError(f"params key 'train.precision': {choice!r} needs a CUDA GPU; use 'auto'")
    if choice == "bf16" and not bf16_ok:
        raise StageError("params key 'train.precision': this GPU has no bf16; use 'auto'")
    return {
        "bf16": choice == "bf16",
        "fp16": choice == "fp16",
        "tf32": True if cuda and bf16_ok else None,
        "optim": "adamw_torch_fused" if cuda else "adamw_torch",
    }


def is_distributed() -> bool:
    """True inside a torchrun worker."""
    return "LOCAL_RANK" in os.environ


def is_main_process() -> bool:
    """True in the process that logs and saves: rank 0, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def launch_workers(n: int, module: str, argv: list[str]) -> None:
    """Re-run ``python -m module argv`` under torchrun with ``n`` processes (DDP: NCCL on
    GPUs, gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    cmd += ["-m", module, *argv]
    print(f"{module.rsplit('.', 1)[-1]}: launching {n} processes: {' '.join(cmd[2:])}", flush=True)
    code = subprocess.call(cmd)
    if code:
        raise StageError(f"{module}: torchrun exited with status {code}")
