"""The train stage's guards against a run that "succeeds" with broken weights: a callback
that stops on a non-finite loss or gradient norm, and checks of the final model.

transformers is imported at the top because Guard must subclass its TrainerCallback at
module level; stages/train.py therefore imports this module only inside the functions that
train, so the stage module itself still imports quickly (it is imported before the stage's
signal handler is installed).
"""

from __future__ import annotations

import math
from pathlib import Path

from transformers import TrainerCallback

from embedtune.errors import StageError
from embedtune.training.checkpoints import COMPLETE

PROBES = 16  # texts encoded to probe the trained model: enough to see a collapse, and quick


class Guard(TrainerCallback):
    """Stops on a non-finite loss or gradient norm and marks saved checkpoints complete.
    Without it one NaN silently turns every weight into NaN and training "succeeds"."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(value):
                raise StageError(f"non-finite {key} ({value}) at step {state.global_step}")

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        # Only the main process writes checkpoints, so only it may vouch for one.
        if ckpt.is_dir() and state.is_world_process_zero:
            (ckpt / COMPLETE).write_text("ok")


def check_best_weights(model, checkpoint: Path) -> None:
    """Fail unless the model in memory holds exactly the best checkpoint's weights."""
    import torch
    from safetensors.torch import load_file

    files = list(checkpoint.glob("model.safetensors")) or list(
        checkpoint.rglob("model.safetensors")
    )
    if not files:
        raise StageError(f"best checkpoint {checkpoint} has no model.safetensors")
    saved = load_file(str(files[0]))
    current = model[0].auto_model.state_dict()
    for name, tensor in saved.items():
        key = name if name in current else name.split(".", 1)[-1]
        # equal_nan: a NaN weight equal in both is "the same weights", not a failed load.
        if key in current and not torch.allclose(
            current[key].detach().cpu(), tensor, rtol=0, atol=0, equal_nan=True
        ):
            raise StageError(
                f"the final model is not the best checkpoint's ({name} differs);"
                " the best-model load failed, refusing to save"
            )


def check_embeddings(model, texts: list[str]) -> None:
    """Probe the trained model: embeddings must be finite and must not collapse to a constant."""
    import torch

    emb = model.encode(texts[:PROBES], convert_to_tensor=True).float()
    if not torch.isfinite(emb).all():
        raise StageError("the trained model gives non-finite embeddings")
    if len(texts) > 1 and emb.std(dim=0).max() < 1e-6:
        raise StageError("the trained model gives the same embedding for every text")
