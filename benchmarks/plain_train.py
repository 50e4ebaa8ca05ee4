"""A plain sentence-transformers training script: the yardstick for the train stage.

What a user would write by hand from the library's documentation: MatryoshkaLoss over
MultipleNegativesRankingLoss, a no-duplicates batch sampler, the library's
InformationRetrievalEvaluator on the dev split every epoch, the best checkpoint kept. It
reads the pipeline's own split and build_ir_eval outputs so both train on the same data.

    python benchmarks/plain_train.py --model models/base --out /tmp/plain \
        --batch-size 32 --max-seq-length 256 --epochs 1 --lr 1e-4 --dims 384 256 128 64

``--attention-dropout 0`` is the same script with the one setting the default train stage
changes (train.attention_dropout), for a like-for-like row beside the untouched script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--split", default="data/split")
    ap.add_argument("--ir", default="data/build_ir_eval")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-seq-length", type=int, default=256)
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 256, 128, 64])
    ap.add_argument(
        "--attention-dropout", type=float,
        help="set the BERT config's attention_probs_dropout_prob (default: the model's own)",
    )  # fmt: skip
    args = ap.parse_args()

    lines = Path(args.split, "train.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    train = Dataset.from_dict(
        {"anchor": [r["anchor"] for r in rows], "positive": [r["positive"] for r in rows]}
    )
    passages = [json.loads(line) for line in Path(args.ir, "corpus.jsonl").read_text().splitlines()]
    dev = json.loads(Path(args.ir, "dev.json").read_text())
    evaluator = InformationRetrievalEvaluator(
        dev["queries"],
        {passage["id"]: passage["text"] for passage in passages},
        {q: set(ids) for q, ids in dev["relevant_docs"].items()},
        name="dev",
    )
    overrides = (
        None
        if args.attention_dropout is None
        else {"attention_probs_dropout_prob": args.attention_dropout}
    )
    model = SentenceTransformer(args.model, device="cpu", config_kwargs=overrides)
    model.max_seq_length = args.max_seq_length
    training_args = SentenceTransformerTrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
        warmup_steps=0.1, lr_scheduler_type="cosine", batch_sampler=BatchSamplers.NO_DUPLICATES,
        eval_strategy="epoch", save_strategy="epoch", save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="dev_cosine_ndcg@10",
        report_to="none", seed=42, use_cpu=True,
    )  # fmt: skip
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=args.dims)
    trainer = SentenceTransformerTrainer(
        model=model, args=training_args, train_dataset=train, loss=loss, evaluator=evaluator
    )
    trainer.train()
    model.save(str(Path(args.out) / "final"))


if __name__ == "__main__":
    main()
