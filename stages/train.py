"""train: fine-tune the base model with MatryoshkaLoss over an in-batch-negatives loss.

Each epoch the model is scored on the dev queries at every dimension and the checkpoint
with the best ``train.best_metric`` is kept. Precision follows the device: bf16 + tf32 and
fused AdamW on a CUDA GPU that supports them, fp32 on CPU.

Checkpoints live in ``--checkpoints`` (outside DVC's outs, which DVC deletes before a
rerun): a run killed part-way resumes from its newest complete checkpoint, provided the
data, params and base model are unchanged. Training curves go to ``--live`` via dvclive.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from embedtune import io, mining, modeling, params, retrieval
from embedtune.checkpoints import fingerprint, latest_complete_checkpoint, prepare_checkpoints
from embedtune.errors import StageError


def training_pairs(rows: list[dict], order: str) -> dict[str, list[str]]:
    """Columns in the order the loss reads them: (anchor, positive) is the intended order;
    (positive, anchor) reproduces the reference run, where the chunk acted as the anchor.
    A mined ``negative`` comes last either way."""
    anchors = [r["anchor"] for r in rows]
    positives = [r["positive"] for r in rows]
    cols = (
        {"positive": positives, "anchor": anchors}
        if order == "positive_anchor"
        else {"anchor": anchors, "positive": positives}
    )
    if rows and "negative" in rows[0]:
        cols["negative"] = [r["negative"] for r in rows]
    return cols


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


def make_loss(model, t: params.Train, dims: list[int]):
    """MatryoshkaLoss over MNRL, or over its cached (GradCache) variant whose in-batch
    negatives number the whole batch at the memory cost of ``mini_batch_size``."""
    from sentence_transformers.sentence_transformer import losses

    # Under DDP each process also ranks against the other processes' batches.
    gather = is_distributed()
    if t.loss == "cached":
        inner = losses.CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=t.mini_batch_size, gather_across_devices=gather
        )
    else:
        inner = losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather)
    return losses.MatryoshkaLoss(model, inner, matryoshka_dims=dims)


def build_trainer(model, rows, dev: retrieval.IRData, p: params.Params, workdir: Path, live=None):
    """The configured SentenceTransformerTrainer (separate from running it, for tests)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers

    from embedtune.evaluator import MatryoshkaIR
    from embedtune.guards import Guard

    t, c = p.train, p.common
    cuda = torch.cuda.is_available()
    prec = precision_settings(t.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    prompts = {k: v for k, v in (("anchor", c.query_prompt), ("positive", c.document_prompt)) if v}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir), num_train_epochs=t.epochs, seed=c.seed, data_seed=c.seed,
        per_device_train_batch_size=t.batch_size, per_device_eval_batch_size=c.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps, learning_rate=t.learning_rate,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of total steps
        lr_scheduler_type=t.lr_scheduler, logging_steps=t.logging_steps,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate in a batch is a false negative
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model=t.best_metric, greater_is_better=True,
        report_to="none",  # dvclive is attached explicitly below, writing where DVC expects
        # Without use_cpu, CPU workers under torchrun each train alone on all the data.
        use_cpu=not cuda, dataloader_pin_memory=cuda, prompts=prompts or None,
        ddp_backend="gloo" if is_distributed() and not cuda else None, **prec,
    )  # fmt: skip
    callbacks = [Guard()]
    if live is not None:
        from transformers.integrations import DVCLiveCallback

        callbacks.append(DVCLiveCallback(live=live))
    return SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(training_pairs(rows, t.pair_order)),
        loss=make_loss(model, t, c.dims),
        evaluator=MatryoshkaIR(dev, c, t.best_metric.removeprefix("eval_")),
        callbacks=callbacks,
    )


def is_distributed() -> bool:
    """True inside a torchrun worker."""
    return "LOCAL_RANK" in os.environ


def is_main_process() -> bool:
    """True in the process that logs and saves: rank 0, or the only process."""
    return int(os.environ.get("RANK", "0")) == 0


def train(
    model,
    rows,
    dev: retrieval.IRData,
    p: params.Params,
    checkpoints: Path,
    resume: Path | None,
    pool: list[str] | None = None,
):
    """Run (or resume) training and return the model holding the best checkpoint's weights.
    ``pool``: the passages hard negatives are mined from (split's train pool; None: the
    training positives). Curves are logged with dvclive under ``checkpoints/live`` so a
    resumed run continues them; only the main process logs, so workers never write the
    same files."""
    from embedtune import guards

    live = None
    if is_main_process():
        from dvclive import Live

        live = Live(
            dir=str(checkpoints / "live"), resume=resume is not None,
            save_dvc_exp=False, dvcyaml=None, report=None,
        )  # fmt: skip
    if p.train.hard_negatives.enabled:
        rows = mining.mine_negatives(model, rows, p, pool)
    trainer = build_trainer(model, rows, dev, p, checkpoints, live)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    best = trainer.state.best_model_checkpoint
    if not best or not Path(best).is_dir():
        raise StageError(
            "train: no best checkpoint was recorded; refusing to save the last weights"
        )
    guards.check_best_weights(trainer.model, Path(best))
    guards.check_embeddings(trainer.model, [r["anchor"] for r in rows] + list(dev.corpus.values()))
    state = trainer.state
    print(
        f"train: {state.global_step} optimizer steps on {trainer.args.world_size} process(es); "
        f"best checkpoint {Path(best).name}, {p.train.best_metric} = {state.best_metric:.4f}"
    )
    return trainer.model


def launch_workers(n: int, argv: list[str]) -> None:
    """Re-run this stage under torchrun with ``n`` processes (DDP: NCCL on GPUs, gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    cmd += ["-m", "stages.train", *argv]
    print(f"train: launching {n} processes: {' '.join(cmd[2:])}", flush=True)
    code = subprocess.call(cmd)
    if code:
        raise StageError(f"train: torchrun exited with status {code}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--split", required=True, help="split output folder")
    ap.add_argument("--ir", required=True, help="build_ir_eval output folder")
    ap.add_argument("--corpus", required=True, help="fetch's corpus.jsonl (for mining)")
    ap.add_argument("--out", required=True, help="folder for the fine-tuned model")
    ap.add_argument("--live", required=True, help="folder for the training curves (dvclive)")
    ap.add_argument("--checkpoints", default="checkpoints/train", help="resumable checkpoints")
    args = ap.parse_args(argv)
    modeling.offline()
    p = params.load(args.params)
    for warning in params.advice(p):
        print(f"train: warning: {warning}")
    rows = io.read_jsonl(Path(args.split) / "train.jsonl")
    part = "dev" if io.read_json(Path(args.ir) / "dev.json")["queries"] else "test"
    if part == "test":
        print(
            "train: warning: no dev split (split.dev_size is 0): the TEST queries pick the "
            "checkpoint, as in the reference run, so test figures are optimistic"
        )
    dev = retrieval.IRData.load(args.ir, part)
    pool = None
    if p.train.hard_negatives.enabled:
        allowed = set(io.read_json(Path(args.split) / "train_pool.json"))
        pool = [r["text"] for r in io.read_jsonl(args.corpus) if r["id"] in allowed]
    model = modeling.load_model(args.model, p.common)
    checkpoints = Path(args.checkpoints)
    if not is_distributed():
        inputs = [Path(args.model), Path(args.split), Path(args.ir), Path(args.corpus)]
        fp = fingerprint(p, inputs)
        resume = prepare_checkpoints(checkpoints, fp)
        if p.train.processes > 1:
            launch_workers(p.train.processes, sys.argv[1:] if argv is None else argv)
            return
    else:
        resume = latest_complete_checkpoint(checkpoints)  # the launcher checked its fingerprint
    best = train(model, rows, dev, p, checkpoints, resume, pool)
    if not is_main_process():
        return
    with io.atomic_path(args.live) as tmp:
        shutil.copytree(checkpoints / "live", tmp)
    with io.atomic_path(args.out) as tmp:
        best.save(str(tmp))
    shutil.rmtree(checkpoints)  # finished: nothing left to resume
    print(f"train: {len(rows)} pairs -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(io.run_stage(main))
