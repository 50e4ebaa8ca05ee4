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
import shutil
import sys
from pathlib import Path

from embedtune import cli, config, io, models
from embedtune.errors import StageError
from embedtune.retrieval import search
from embedtune.training import distributed, mining, model_card
from embedtune.training.checkpoints import (
    fingerprint,
    latest_complete_checkpoint,
    prepare_checkpoints,
)
from embedtune.training.losses import GUIDED, make_loss, training_pairs


def build_trainer(
    model, rows, dev: search.IRData, conf: config.Params, workdir: Path, live=None, guide=None
):
    """The configured SentenceTransformerTrainer (separate from running it, for tests);
    ``guide``: the frozen base model the guided losses consult."""
    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers

    from embedtune.training.evaluator import MatryoshkaIR
    from embedtune.training.guards import Guard

    cfg, common = conf.train, conf.common
    cuda = torch.cuda.is_available()
    prec = distributed.precision_settings(
        cfg.precision, cuda, cuda and torch.cuda.is_bf16_supported()
    )
    prompts = {"anchor": common.query_prompt, "positive": common.document_prompt}
    args = SentenceTransformerTrainingArguments(
        output_dir=str(workdir), num_train_epochs=cfg.epochs,
        seed=common.seed, data_seed=common.seed, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=common.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,  # non-reentrant: works under DDP
        activation_checkpointing_kwargs={"use_reentrant": False},
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of total steps
        lr_scheduler_type=cfg.lr_scheduler, logging_steps=cfg.logging_steps,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # a duplicate in a batch is a false negative
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model=cfg.best_metric, greater_is_better=True,
        report_to="none",  # dvclive is attached explicitly below, writing where DVC expects
        # Without use_cpu, CPU workers under torchrun each train alone on all the data.
        use_cpu=not cuda, dataloader_pin_memory=cuda,
        prompts={k: v for k, v in prompts.items() if v} or None,
        ddp_backend="gloo" if distributed.is_distributed() and not cuda else None, **prec,
    )  # fmt: skip
    callbacks = [Guard()]
    if live is not None:
        from embedtune.training.curves import UntimedDVCLive

        callbacks.append(UntimedDVCLive(live=live))
    return SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(training_pairs(rows, cfg.pair_order)),
        loss=make_loss(model, cfg, common.dims, guide),
        evaluator=MatryoshkaIR(dev, common, cfg.best_metric.removeprefix("eval_")),
        callbacks=callbacks,
    )


def train(
    model,
    rows,
    dev: search.IRData,
    conf: config.Params,
    checkpoints: Path,
    resume: Path | None,
    pool: list[str] | None = None,
    guide=None,
    stored=None,
):
    """Run (or resume) training; return the model holding the best checkpoint's weights and
    the corpus embeddings (float32, ``dev.corpus`` order) its dev evaluation made, or None
    when this run did not make them (resumed after it). ``pool``: the passages hard
    negatives are mined from (None: the training positives), ``stored`` the baseline's
    embeddings of them (embedding_cache.Stored); ``guide``: the base model, for the guided
    losses. Curves go to ``checkpoints/live`` (dvclive, main
    process only), so a resumed run continues them."""
    from embedtune.training import guards

    live = None
    if distributed.is_main_process():
        from dvclive import Live

        live = Live(
            dir=str(checkpoints / "live"), resume=resume is not None,
            save_dvc_exp=False, dvcyaml=None, report=None,
        )  # fmt: skip
    if conf.train.hard_negatives.enabled:
        rows = mining.mine_negatives(model, rows, conf, pool, stored)
    trainer = build_trainer(model, rows, dev, conf, checkpoints, live, guide)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    state = trainer.state
    if conf.train.nodes > 1:
        # Checkpoints hold weights on global rank 0's machine only (transformers writes them
        # there alone), so the other machines take the best weights from it.
        distributed.share_weights_from_rank0(trainer.model)
    if distributed.global_rank() == 0:
        best = state.best_model_checkpoint
        if not best or not Path(best).is_dir():
            raise StageError("no best checkpoint was recorded; refusing to save the last weights")
        guards.check_best_weights(trainer.model, Path(best))
    guards.check_embeddings(trainer.model, [r["anchor"] for r in rows] + list(dev.corpus.values()))
    runtime = next((e["train_runtime"] for e in state.log_history if "train_runtime" in e), 0)
    print(
        f"train: {state.global_step} optimizer steps in {runtime:.0f} s on "
        f"{trainer.args.world_size} process(es); "
        f"best checkpoint at step {state.best_global_step}, "
        f"{conf.train.best_metric} = {state.best_metric:.4f}"
    )
    return trainer.model, trainer.evaluator.corpus_of_step(state.best_global_step)


def save_corpus_embeddings(folder, model_dir, dev: search.IRData, corpus, common) -> None:
    """Store the chosen checkpoint's corpus embeddings under the saved model's identity, so
    a stage that loads ``model_dir`` and would make the same rows reads them instead."""
    from embedtune.retrieval import embedding_cache

    if corpus is None:
        reason = "this run resumed after the chosen checkpoint's dev evaluation"
        embedding_cache.save_none(folder, reason)
        return
    made_under = embedding_cache.identity(model_dir, common)
    embedding_cache.save(folder, list(dev.corpus), corpus, made_under)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="base model folder")
    ap.add_argument("--split", required=True, help="split output folder")
    ap.add_argument("--ir", required=True, help="build_ir_eval output folder")
    ap.add_argument("--corpus", required=True, help="fetch's corpus.jsonl (for mining)")
    ap.add_argument("--embeddings", help="baseline's corpus embeddings (mining reuses them)")
    ap.add_argument("--source", required=True, help="fetch's source.json (for the model card)")
    ap.add_argument("--out", required=True, help="folder for the fine-tuned model")
    ap.add_argument("--live", required=True, help="folder for the training curves (dvclive)")
    ap.add_argument(
        "--embeddings-out",
        help="where the chosen checkpoint's corpus embeddings go (evaluate and export reuse them)",
    )
    ap.add_argument("--checkpoints", default="checkpoints/train", help="resumable checkpoints")
    args = ap.parse_args(argv)
    cli.offline()
    conf = config.load(args.params)
    for warning in config.advice(conf):
        print(f"train: warning: {warning}")
    rows = io.read_jsonl(Path(args.split) / "train.jsonl")
    part = "dev" if io.read_json(Path(args.ir) / "dev.json")["queries"] else "test"
    if part == "test":
        print(
            "train: warning: no dev split (split.dev_size is 0): the TEST queries pick the "
            "checkpoint, as in the reference run, so test figures are optimistic"
        )
    dev = search.IRData.load(args.ir, part)
    pool = stored = None
    if conf.train.hard_negatives.enabled:
        pool = mining.training_pool(args.split, args.corpus)
        stored = mining.stored_embeddings(args.embeddings, args.model, conf.common, dev.corpus)
    checkpoints = Path(args.checkpoints)
    if not distributed.is_distributed():
        inputs = [Path(args.model), Path(args.split), Path(args.ir), Path(args.corpus)]
        fp = fingerprint(conf, inputs)
        resume = prepare_checkpoints(checkpoints, fp)
        if conf.train.processes > 1 or conf.train.nodes > 1:
            forwarded = sys.argv[1:] if argv is None else argv
            cfg = conf.train
            distributed.launch_workers(cfg.processes, cfg.nodes, "stages.train", forwarded, fp[:16])
            return
    else:
        # The launcher checked the fingerprint. Across machines only global rank 0 holds
        # complete checkpoints, so a multi-node run starts over rather than resume.
        resume = latest_complete_checkpoint(checkpoints) if conf.train.nodes == 1 else None
    model, replaced = models.load_for_training(
        args.model, conf.common, conf.train.attention_dropout
    )
    # The guide stays the base model throughout: a second, frozen copy.
    guide = models.load_model(args.model, conf.common) if conf.train.loss in GUIDED else None
    best, corpus = train(model, rows, dev, conf, checkpoints, resume, pool, guide, stored)
    if not distributed.is_main_process():
        return
    test = search.IRData.load(args.ir, "test")
    source = io.read_json(args.source)
    # dev and test search the same knowledge base: the card's test scores reuse its rows.
    same_corpus = corpus is not None and list(test.corpus) == list(dev.corpus)
    model_card.fill(best, conf, source, Path(args.model), len(rows), test,
                    corpus if same_corpus else None)  # fmt: skip
    with io.atomic_path(args.live) as tmp:
        shutil.copytree(checkpoints / "live", tmp)
    models.restore_config(best, replaced)
    with io.atomic_path(args.out) as tmp:
        best.save(str(tmp))
    if args.embeddings_out:
        save_corpus_embeddings(args.embeddings_out, args.out, dev, corpus, conf.common)
    shutil.rmtree(checkpoints)  # finished: nothing left to resume
    print(f"train: {len(rows)} pairs -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
