"""Where training runs: precision for the device, and the torchrun (DDP) process roles."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from embedtune.errors import StageError

log = logging.getLogger(__name__)

RDZV_ENV = "EMBEDTUNE_RDZV_ENDPOINT"


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
    """True in the process that logs and writes the outputs: local rank 0 on each node (or
    the only process). Every node ends with the same weights (DDP keeps them in step), so
    each writes its own copy and `dvc repro` succeeds on every machine."""
    return int(os.environ.get("LOCAL_RANK", "0")) == 0


def global_rank() -> int:
    """This process's rank across all machines (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def share_weights_from_rank0(model) -> None:
    """Give every process global rank 0's weights, then leave the process group: the
    machines are done talking, and transformers writes weights only outside a group or on
    rank 0, so each machine can now save its own copy."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
    dist.barrier()
    dist.destroy_process_group()


def torchrun_command(processes: int, nodes: int, module: str, argv: list[str], run_id: str):
    """The torchrun command line: standalone on one node; on several, a c10d rendezvous at
    ``$EMBEDTUNE_RDZV_ENDPOINT`` (host:port of the first node) under ``run_id``, so only
    nodes started on the same inputs and params join one another."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}"]
    if nodes == 1:
        cmd.append("--standalone")
    else:
        endpoint = os.environ.get(RDZV_ENV)
        if not endpoint:
            raise StageError(
                f"params key 'train.nodes' is {nodes}: set {RDZV_ENV}=<host>:<port> of the first "
                "node on every node before running the stage"
            )
        cmd += [
            f"--nnodes={nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
            f"--rdzv-id={run_id}",
        ]  # fmt: skip
    return [*cmd, "-m", module, *argv]


def launch_workers(
    processes: int, nodes: int, module: str, argv: list[str], run_id: str = "embedtune"
) -> None:
    """Re-run ``python -m module argv`` under torchrun (DDP: NCCL on GPUs, gloo on CPU)."""
    cmd = torchrun_command(processes, nodes, module, argv, run_id)
    total = (
        f"{processes} process(es) on each of {nodes} nodes"
        if nodes > 1
        else f"{processes} processes"
    )
    log.info("launching %s: %s", total, " ".join(cmd[2:]))
    code = subprocess.call(cmd)
    if code:
        raise StageError(f"{module}: torchrun exited with status {code}")
