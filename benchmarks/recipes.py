"""Benchmark: training recipes side by side, chosen on the dev split.

Each recipe is the project's params with a few keys changed (the loss, mined hard
negatives, epochs). Every recipe trains with the train stage's own code from the same base
model and data, picks its best checkpoint on dev as the stage does, and is then scored on
dev and on test over the whole knowledge base. Choose by the dev column; the test column
is printed so the README can report the chosen recipe's test figures, not to choose by.

Run it in a project whose data stages are reproduced (`dvc repro build_ir_eval`):

    python benchmarks/recipes.py --out recipes.json
    python benchmarks/recipes.py --only mnrl gist     # a subset
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Run as `python benchmarks/<name>.py`, Python puts benchmarks/ on the path, not the project
# root; `stages` is not an installed package, so the root goes on the path here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# name -> (what changes, train overrides, hard_negatives overrides)
RECIPES = {
    "mnrl": ("MNRL, 1 epoch, params.yaml's attention dropout", {"loss": "mnrl"}, {}),
    "mnrl_model_dropout": (
        "MNRL, 1 epoch, the model's own attention dropout",
        {"loss": "mnrl", "attention_dropout": None},
        {},
    ),
    "gist": ("GISTEmbedLoss, base model as guide, 1 epoch", {"loss": "gist"}, {}),
    "mnrl_hard_neg": ("MNRL + one mined hard negative per pair", {}, {"enabled": True}),
    "mnrl_2_epochs": ("MNRL, 2 epochs", {"epochs": 2}, {}),
    "gist_2_epochs": ("GISTEmbedLoss, 2 epochs", {"loss": "gist", "epochs": 2}, {}),
}


def recipe_params(conf, train_changes: dict, mining_changes: dict):
    """``conf`` with the recipe's train (and hard-negative) keys replaced."""
    from embedtune import config

    mining = config.replace(conf.train.hard_negatives, **mining_changes)
    train = config.replace(conf.train, hard_negatives=mining, **train_changes)
    return config.replace(conf, train=train)


def run_recipe(name: str, conf, root: Path) -> dict:
    """Train one recipe and score it on dev and test at every dimension."""
    from embedtune import io, models
    from embedtune.metrics import HEADLINE
    from embedtune.retrieval import search
    from embedtune.training import mining
    from embedtune.training.losses import GUIDED
    from stages import train

    rows = io.read_jsonl(root / "data/split/train.jsonl")
    dev = search.IRData.load(root / "data/build_ir_eval", "dev")
    test = search.IRData.load(root / "data/build_ir_eval", "test")
    pool = None
    if conf.train.hard_negatives.enabled:
        pool = mining.training_pool(root / "data/split", root / "data/fetch/corpus.jsonl")
    base = root / "models/base"
    model, _ = models.load_for_training(base, conf.common, conf.train.attention_dropout)
    guide = models.load_model(base, conf.common) if conf.train.loss in GUIDED else None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tuned, _ = train.train(model, rows, dev, conf, Path(tmp), None, pool, guide)
    seconds = time.perf_counter() - start
    common = conf.common
    out = {"recipe": name, "train_seconds": round(seconds, 1)}
    for part, data in (("dev", dev), ("test", test)):
        scores = search.evaluate_model(
            tuned, data, common.dims, common.eval_batch_size,
            common.query_prompt, common.document_prompt,
        )  # fmt: skip
        for d, (m, _) in scores.items():
            out[f"{part}_{d}"] = round(m[HEADLINE], 4)
    return out


def main() -> None:
    from tabulate import tabulate

    from embedtune import cli, config

    cli.setup_logging("recipes")  # the library's progress lines (mining, checkpoints)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=".", help="project folder with data/ and models/base")
    ap.add_argument("--only", nargs="*", choices=sorted(RECIPES), help="recipes to run")
    ap.add_argument("--out", help="also write the rows as JSON here (appended per recipe)")
    args = ap.parse_args()
    root = Path(args.root)
    conf = config.load(root / "params.yaml")
    rows = []
    for name in args.only or list(RECIPES):
        what, train_changes, mining_changes = RECIPES[name]
        print(f"recipes: {name}: {what}", flush=True)
        rows.append(run_recipe(name, recipe_params(conf, train_changes, mining_changes), root))
        if args.out:  # after every recipe: an interrupted comparison keeps what it measured
            Path(args.out).write_text(json.dumps(rows, indent=2))
    dims = conf.common.dims
    headers = ["recipe", "train s", *(f"dev {d}" for d in dims), *(f"test {d}" for d in dims)]
    table = [
        [r["recipe"], r["train_seconds"], *(r[f"dev_{d}"] for d in dims),
         *(r[f"test_{d}"] for d in dims)]
        for r in rows
    ]  # fmt: skip
    print(f"ndcg@10 over the whole knowledge base ({conf.split.strategy} split)")
    print(tabulate(table, headers=headers, tablefmt="github"))
    best = max(rows, key=lambda r: r[f"dev_{max(dims)}"])
    print(f"best on dev at {max(dims)} dims: {best['recipe']}")


if __name__ == "__main__":
    main()
