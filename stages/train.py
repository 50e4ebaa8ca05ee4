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
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from embedtune import io, modeling, params, retrieval
from embedtune.errors import StageError

COMPLETE = ".complete"  # written after the trainer has fully saved a checkpoint
PROBES = 16


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


def relevant_texts(rows: list[dict]) -> dict[str, set[str]]:
    """Every passage each question is paired with (a question may be asked of several)."""
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["anchor"], set()).add(r["positive"])
    return out


def pick_negatives(mined: list[dict], candidates: int, relevant: dict[str, set[str]]) -> list[dict]:
    """(anchor, positive, negative) rows: the closest mined candidate that is not relevant to
    the question. Pairs with no usable candidate are dropped."""
    out = []
    for row in mined:
        for i in range(1, candidates + 1):
            negative = row.get(f"negative_{i}")
            if negative is not None and negative not in relevant[row["anchor"]]:
                out.append(
                    {"anchor": row["anchor"], "positive": row["positive"], "negative": negative}
                )
                break
    return out


def mine_negatives(model, rows: list[dict], p: params.Params) -> list[dict]:
    """Hard negatives from the training split's own passages, scored by the base model.

    Only training passages are candidates, so nothing of the dev or test split leaks into
    training; a passage that is a positive of the same question is never a negative."""
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    h, c = p.train.hard_negatives, p.common
    pairs = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
    corpus = sorted({r["positive"] for r in rows})
    mined = mine_hard_negatives(
        pairs,
        model,
        anchor_column_name="anchor",
        positive_column_name="positive",
        corpus=corpus,
        range_min=h.range_min,
        range_max=min(h.range_max, len(corpus)),
        relative_margin=h.relative_margin,
        num_negatives=h.candidates,
        sampling_strategy="top",
        query_prompt=c.query_prompt or None,
        corpus_prompt=c.document_prompt or None,
        output_format="n-tuple",
        batch_size=c.eval_batch_size,
        verbose=False,
    )
    out = pick_negatives(list(mined), h.candidates, relevant_texts(rows))
    print(f"train: mined a hard negative for {len(out)} of {len(rows)} training pairs")
    if not out:
        raise StageError(
            "train: hard negative mining found no usable negative; lower "
            "train.hard_negatives.relative_margin or raise range_max"
        )
    return out


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


def fingerprint(p: params.Params, files: list[Path]) -> str:
    """Identity of a training run: params that shape it plus the bytes of its inputs.
    A checkpoint with another fingerprint belongs to another run and must not be resumed."""
    h = hashlib.sha256(json.dumps([repr(p.train), repr(p.common)]).encode())
    for root in files:
        for f in sorted(x for x in ([root] if root.is_file() else root.rglob("*")) if x.is_file()):
            h.update(str(f.relative_to(root.parent)).encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def latest_complete_checkpoint(folder: Path) -> Path | None:
    """Newest checkpoint-N with its completion marker; a half-written one is skipped."""
    found = [c for c in folder.glob("checkpoint-*") if (c / COMPLETE).is_file()]
    return max(found, key=lambda c: int(c.name.split("-")[1]), default=None)


def prepare_checkpoints(folder: Path, fp: str) -> Path | None:
    """Keep the folder only if it belongs to this exact run; return where to resume."""
    stamp = folder / "fingerprint"
    if folder.exists() and (not stamp.is_file() or stamp.read_text() != fp):
        print(f"train: discarding checkpoints in {folder}: they come from other data/params/model")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fp)
    resume = latest_complete_checkpoint(folder)
    if resume:
        print(f"train: resuming from {resume}")
    return resume


def make_evaluator(data: retrieval.IRData, common: params.Common, primary: str):
    """A sentence-transformers evaluator that encodes once and scores every dimension."""
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    class MatryoshkaIR(BaseEvaluator):
        def __init__(self) -> None:
            super().__init__()
            self.primary_metric = primary

        def __call__(self, model, output_path=None, epoch=-1, steps=-1):
            results = retrieval.evaluate_model(
                model, data, common.dims, common.eval_batch_size,
                common.query_prompt, common.document_prompt,
            )  # fmt: skip
            return {f"dim_{d}_cosine_{k}": v for d, (m, _) in results.items() for k, v in m.items()}

    return MatryoshkaIR()


def make_guard():
    """Callback that stops on a non-finite loss or gradient norm and marks saved checkpoints
    complete. Without it one NaN silently turns every weight into NaN and training
    "succeeds"."""
    from transformers import TrainerCallback

    class Guard(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            for key in ("loss", "grad_norm"):
                value = (logs or {}).get(key)
                if value is not None and not math.isfinite(value):
                    raise StageError(
                        f"train: non-finite {key} ({value}) at step {state.global_step}"
                    )

        def on_save(self, args, state, control, **kwargs):
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir() and state.is_world_process_zero:
                (ckpt / COMPLETE).write_text("ok")

    return Guard()


def make_loss(model, t: params.Train, dims: list[int]):
    """MatryoshkaLoss over MNRL, or over its cached (GradCache) variant whose in-batch
    negatives number the whole batch at the memory cost of ``mini_batch_size``."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    # Under DDP each process also ranks against the other processes' batches.
    gather = is_distributed()
    if t.loss == "cached":
        inner = CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=t.mini_batch_size, gather_across_devices=gather
        )
    else:
        inner = MultipleNegativesRankingLoss(model, gather_across_devices=gather)
    return MatryoshkaLoss(model, inner, matryoshka_dims=dims)


def build_trainer(model, rows, dev: retrieval.IRData, p: params.Params, workdir: Path, live=None):
    """The configured SentenceTransformerTrainer (separate from running it, for tests)."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers

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
        report_to="none",  # dvclive is attached explicitly below, writing where DVC expects
        dataloader_pin_memory=cuda,
        # Without use_cpu, CPU workers under torchrun each train alone on all the data.
        use_cpu=not cuda,
        ddp_backend="gloo" if is_distributed() and not cuda else None,
        prompts=prompts or None,
        **prec,
    )
    callbacks = [make_guard()]
    if live is not None:
        from transformers.integrations import DVCLiveCallback

        callbacks.append(DVCLiveCallback(live=live))
    return SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(training_pairs(rows, t.columns)),
        loss=make_loss(model, t, c.dims),
        evaluator=make_evaluator(dev, c, t.best_metric.removeprefix("eval_")),
        callbacks=callbacks,
    )


def check_best_weights(model, checkpoint: Path) -> None:
    """Fail unless the model in memory holds exactly the best checkpoint's weights."""
    import torch
    from safetensors.torch import load_file

    files = list(checkpoint.glob("model.safetensors")) or list(
        checkpoint.rglob("model.safetensors")
    )
    if not files:
        raise StageError(f"train: best checkpoint {checkpoint} has no model.safetensors")
    saved = load_file(str(files[0]))
    current = model[0].auto_model.state_dict()
    for name, tensor in saved.items():
        key = name if name in current else name.split(".", 1)[-1]
        # equal_nan: a NaN weight equal in both is "the same weights", not a failed load.
        if key in current and not torch.allclose(
            current[key].detach().cpu(), tensor, rtol=0, atol=0, equal_nan=True
        ):
            raise StageError(
                f"train: the final model is not the best checkpoint's ({name} differs);"
                " the best-model load failed, refusing to save"
            )


def check_embeddings(model, texts: list[str]) -> None:
    """Probe the trained model: embeddings must be finite and must not collapse to a constant."""
    import torch

    emb = model.encode(texts[:PROBES], convert_to_tensor=True).float()
    if not torch.isfinite(emb).all():
        raise StageError("train: the trained model gives non-finite embeddings")
    if len(texts) > 1 and emb.std(dim=0).max() < 1e-6:
        raise StageError("train: the trained model gives the same embedding for every text")


def is_distributed() -> bool:
    """True inside a torchrun worker."""
    return "LOCAL_RANK" in os.environ


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def train(
    model, rows, dev: retrieval.IRData, p: params.Params, checkpoints: Path, resume: Path | None
):
    """Run (or resume) training and return the model holding the best checkpoint's weights.
    Curves are logged with dvclive under ``checkpoints/live`` so a resumed run continues them;
    only the main process logs, so workers never write the same files."""
    live = None
    if is_main_process():
        from dvclive import Live

        live = Live(
            dir=str(checkpoints / "live"),
            resume=resume is not None,
            save_dvc_exp=False,
            dvcyaml=None,
            report=None,
        )
    if p.train.hard_negatives.enabled:
        rows = mine_negatives(model, rows, p)
    trainer = build_trainer(model, rows, dev, p, checkpoints, live)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    best = trainer.state.best_model_checkpoint
    if not best or not Path(best).is_dir():
        raise StageError(
            "train: no best checkpoint was recorded; refusing to save the last weights"
        )
    check_best_weights(trainer.model, Path(best))
    check_embeddings(trainer.model, [r["anchor"] for r in rows] + list(dev.corpus.values()))
    state = trainer.state
    print(
        f"train: {state.global_step} optimizer steps on {trainer.args.world_size} process(es); "
        f"best checkpoint {Path(best).name}, {p.train.best_metric} = {state.best_metric:.4f}"
    )
    return trainer.model


def launch_workers(n: int, argv: list[str]) -> None:
    """Re-run this stage under torchrun with ``n`` processes (DDP: NCCL on GPUs, gloo on CPU)."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={n}",
        "-m",
        "stages.train",
        *argv,
    ]
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
    model = modeling.load_model(args.model, p.common)
    checkpoints = Path(args.checkpoints)
    if not is_distributed():
        fp = fingerprint(p, [Path(args.model), Path(args.split) / "train.jsonl", Path(args.ir)])
        resume = prepare_checkpoints(checkpoints, fp)
        if p.train.processes > 1:
            launch_workers(p.train.processes, sys.argv[1:] if argv is None else argv)
            return
    else:
        resume = latest_complete_checkpoint(checkpoints)  # the launcher checked its fingerprint
    best = train(model, rows, dev, p, checkpoints, resume)
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
