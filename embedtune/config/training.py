"""The sections of the model stages: train (with hard-negative mining) and export."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from embedtune.config.base import Pos, Section, Share, field, rule


class HardNegatives(Section):
    enabled: bool = field(False, "mine one hard negative per training pair")
    range_min: int = field(
        0, "skip this many closest passages (possible unlabelled positives)", ge=0
    )
    range_max: Pos = field(50, "candidates considered per question; > range_min")
    relative_margin: Share = field(0.05, "a negative must score this share below the positive")
    candidates: Pos = field(5, "mined per pair; passages relevant to the question are dropped")

    @model_validator(mode="after")
    def _range(self) -> HardNegatives:
        rule(self.range_min < self.range_max, "range_max", "must be > range_min")
        return self


class Train(Section):
    epochs: float = field(1.0, "passes over the training pairs (fractions allowed)", gt=0)
    batch_size: Pos = field(32, "pairs per step: each query ranks against the batch's passages")
    gradient_accumulation_steps: Pos = field(1, "steps per optimizer update (adds no negatives)")
    learning_rate: float = field(1.0e-4, "peak learning rate", gt=0)
    warmup_ratio: Share = field(0.1, "share of the steps warming up to learning_rate")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = field(
        "cosine", "decay after warmup"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        "auto", "auto: bf16+tf32 on a bf16 GPU, fp16 on older GPUs, fp32 on CPU"
    )
    pair_order: Literal["anchor_positive", "positive_anchor"] = field(
        "anchor_positive", "anchor_positive | positive_anchor (the reference's order)"
    )
    loss: Literal["mnrl", "cached", "gist", "cached_gist"] = field(
        "mnrl",
        "mnrl | cached (GradCache: negatives = whole batch, memory = mini batch) | gist | "
        "cached_gist (the base model as guide drops in-batch false negatives)",
    )
    mini_batch_size: Pos = field(32, "used by the cached losses")
    gradient_checkpointing: bool = field(
        False, "true: about 0.6x the training memory, 1.4x the time, same weights"
    )
    attention_dropout: Share | None = field(
        0.0,
        "null: the model's own (BERT-like: 0.1); 0.0 lets CPU attention run fused: less "
        'memory, faster, and better on dev for the sample (README "Recipes")',
    )
    processes: Pos = field(
        1, ">1: the stage relaunches itself with torchrun (DDP), one per GPU/CPU worker"
    )
    nodes: Pos = field(1, ">1: multi-node DDP; set EMBEDTUNE_RDZV_ENDPOINT=host:port on every node")
    best_metric: str = field(
        "eval_dim_128_cosine_ndcg@10",
        "dev metric that picks the checkpoint: eval_dim_<d>_cosine_<metric>",
    )
    logging_steps: Pos = field(5, "steps between logged losses")
    hard_negatives: HardNegatives = field(
        HardNegatives(), "one mined negative per pair, from the training split only"
    )


ExportFormat = Literal["onnx", "onnx_int8", "openvino"]


class Export(Section):
    formats: list[ExportFormat] = field(
        ["onnx", "onnx_int8", "openvino"],
        "onnx: float32 | onnx_int8: int8 weights (dynamic) | openvino: IR from the ONNX file",
        min_length=1,
    )
    opset: int = field(
        18, "ONNX opset of the exported graph (torch's dynamo exporter: >= 18)", ge=18
    )

    @model_validator(mode="after")
    def _distinct(self) -> Export:
        rule(len(set(self.formats)) == len(self.formats), "formats", "want distinct formats")
        return self
