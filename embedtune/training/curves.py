"""The training curves dvclive writes under metrics/train, without the wall-clock figures.

transformers' DVCLiveCallback logs every number the trainer reports, timings included
(``train_runtime``, ``eval_samples_per_second``, ...). Those differ on every run, so two runs
of one commit would leave different metrics files and a pull request that changed nothing
would list them as changed. Speed is measured by the benchmarks instead; the train stage
prints its own run time.

transformers is imported at the top because the callback subclasses its class at module
level; stages/train.py imports this module only inside build_trainer.
"""

from __future__ import annotations

import re

from transformers.integrations import DVCLiveCallback

TIMING = re.compile(r"(runtime|_per_second)$")


def untimed(logs: dict | None) -> dict:
    """``logs`` without the keys that measure time rather than the model."""
    return {k: v for k, v in (logs or {}).items() if not TIMING.search(k)}


class UntimedDVCLive(DVCLiveCallback):
    """DVCLiveCallback that leaves out the timings (``untimed``)."""

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        super().on_log(args, state, control, model=model, logs=untimed(logs), **kwargs)
