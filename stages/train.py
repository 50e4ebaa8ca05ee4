"""train: fine-tune the base model with MatryoshkaLoss over MultipleNegativesRankingLoss.

Each epoch the model is scored on the dev queries at every dimension and the checkpoint
with the best ``train.best_metric`` is kept. Precision follows the device: bf16 + tf32 and
fused AdamW on a CUDA GPU that supports them, fp32 on CPU.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from embedtune import io, modeling, params, retrieval
from embedtune.errors import StageError


def training_pairs(rows: list[dict], order: str) -> dict[str, list[str]]:
    """Columns in the order the loss reads them: (anchor, positive) is the intended order;
    (positive, anchor) reproduces the reference run, where the chunk acted as the anchor."""
    anchors = [r["anchor"] for r in rows]
    positives = [r["positive"] for r in rows]
    if order == "positive_anchor":
        return {"positive": positives, "anchor": anchors}
    return {"anchor": anchors, "positive": positives}


def precision_settings(choice: str, cuda: bool, bf16_ok: bool) -> dict:
    """Trainer arguments for the requested precision on this device."""
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


def make_evaluator(data: retrieval.IRData, common: params.Common, primary: str):
    """A sentence-transformers evaluator that encodes once and scores every dimension."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    class MatryoshkaIR(BaseEvaluator):
        def __init__(self) -> None:
            super().__init__()
            self.primary_metric = primary

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            results = retrieval.evaluate_model(
                model,
                data,
                common.dims,
                common.eval_batch_size,
                common.query_prompt,
                common.document_prompt,
            )
            return {f"dim_{d}_cosine_{k}": v for d, (m, _) in results.items() for k, v in m.items()}

    return MatryoshkaIR()


def build_trainer(model, rows: list[dict], dev: retrieval.IRData, p: params.Params, workdir: Path):
    """The configured SentenceTransformerTrainer (separate from running it, for tests)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    t, c = p.train, p.common
    cuda = torch.cuda.is_available()
    prec = precision_settings(t.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    prompts = {k: v for k, v in (("anchor", c.query_prompt), ("positive", c.document_prompt)) if v}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir),
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=c.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of total steps
        lr_scheduler_type=t.lr_scheduler,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate in a batch is a false negative
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model=t.best_metric,
        greater_is_better=True,
        save_total_limit=2,
        logging_steps=t.logging_steps,
        seed=c.seed,
        data_seed=c.seed,
        report_to="none",
        dataloader_pin_memory=cuda,
        prompts=prompts or None,
        **prec,
    )
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=c.dims)
    primary = t.best_metric.removeprefix("eval_")
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(training_pairs(rows, t.columns)),
        loss=loss,
        evaluator=make_evaluator(dev, c, primary),
    )
    return trainer


def train(model, rows: list[dict], dev: retrieval.IRData, p: params.Params, workdir: Path):
    """Run the trainer and return the model holding the best checkpoint's weights."""
    t = p.train
    trainer = build_trainer(model, rows, dev, p, workdir)
    trainer.train()
    best = trainer.state.best_model_checkpoint
    if not best or not Path(best).is_dir():
        raise StageError(
            "train: no best checkpoint was recorded; refusing to save the last weights"
        )
    for name, value in trainer.state.log_history[-1].items():
        if "loss" in name and isinstance(value, float) and not math.isfinite(value):
            raise StageError(f"train: non-finite {name} ({value})")
    score = trainer.state.best_metric
    print(f"train: best checkpoint {Path(best).name}, {t.best_metric} = {score:.4f}")
    return trainer.model


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--split", required=True, help="split output folder")
    ap.add_argument("--ir", required=True, help="build_ir_eval output folder")
    ap.add_argument("--out", required=True, help="folder for the fine-tuned model")
    args = ap.parse_args(argv)
    modeling.offline()
    p = params.load(args.params)
    rows = io.read_jsonl(Path(args.split) / "train.jsonl")
    part = "dev" if io.read_json(Path(args.ir) / "dev.json")["queries"] else "test"
    if part == "test":
        print(
            "train: warning: no dev split (split.dev_size is 0); the TEST queries pick the "
            "checkpoint, as in the reference run, so test figures are optimistic"
        )
    dev = retrieval.IRData.load(args.ir, part)
    model = modeling.load_model(args.model, p.common)
    with tempfile.TemporaryDirectory(prefix="train-", dir=Path(args.out).parent) as work:
        best = train(model, rows, dev, p, Path(work))
        with io.atomic_path(args.out) as tmp:
            best.save(str(tmp))
    print(f"train: {len(rows)} pairs -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(io.run_stage(main))
