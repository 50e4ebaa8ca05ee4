"""The fine-tuned model's README, filled in through sentence-transformers' model card data.

sentence-transformers writes README.md when the model is saved, from its
``model_card_data``: the trainer has already recorded the loss, hyperparameters, training
set statistics and the dev evaluations. This adds what only the pipeline knows: where the
base model and the data came from, the licence and language the base model declares, the
split protocol, and the test metrics at every dimension.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from embedtune import config
from embedtune.retrieval import search

# A packaged or local copy of a Hub model keeps the Hub card, whose usage snippet names it.
HUB_ID_IN_CARD = re.compile(r"SentenceTransformer\(['\"]([\w.-]+/[\w.-]+)['\"]\)")


def base_model_facts(model_dir: Path, model_label: str) -> dict:
    """Hub id, revision, licence and language of the base model, from fetch's provenance
    label ("hub <id>@<sha>", "package <name>", "local <path>") and the base model's own
    README front matter."""
    facts: dict = {"id": None, "revision": None, "license": None, "language": None}
    if model_label.startswith("hub "):
        facts["id"], _, facts["revision"] = model_label[4:].partition("@")
    readme = model_dir / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if text.startswith("---"):
        front = yaml.safe_load(text.split("---", 2)[1]) or {}
        facts["license"] = front.get("license")
        facts["language"] = front.get("language")
    if facts["id"] is None and (m := HUB_ID_IN_CARD.search(text)):
        facts["id"] = m.group(1)
    return facts


def protocol(conf: config.Params, test: search.IRData) -> str:
    """One line on how the test figures were obtained."""
    split = conf.split
    return (
        f"held-out test split ({split.strategy} split, test_size {split.test_size}, "
        f"seed {conf.common.seed}; the checkpoint was chosen on the dev split, never on "
        f"test): {len(test.queries)} questions searched over {len(test.corpus)} passages"
    )


def fill(
    model,
    conf: config.Params,
    source: dict,
    base_dir: Path,
    n_pairs: int,
    test,
    corpus_embeddings=None,
) -> dict:
    """Complete ``model.model_card_data`` before saving and return the test metrics
    recorded in it (``dim_<d>_cosine_<metric>``). ``source``: fetch's source.json;
    ``test``: the test split, scored here for the card only (nothing is chosen on it);
    ``corpus_embeddings``: this model's rows of ``test.corpus``, if already made."""
    from embedtune.training.evaluator import MatryoshkaIR

    card = model.model_card_data
    base = base_model_facts(base_dir, source["model"])
    if base["id"]:
        card.base_model, card.base_model_revision = base["id"], base["revision"]
    if base["license"]:
        card.license = base["license"]
    if base["language"]:
        card.set_language(base["language"])
    name = base["id"].split("/")[-1] if base["id"] else "embedding model"
    card.model_name = f"{name} fine-tuned for retrieval on {source['data']}"
    # The trainer recorded each training set's columns, statistics and loss; name them.
    for entry in card.train_datasets:
        entry["name"] = f"{source['data']} ({n_pairs} training question-passage pairs)"
    # sentence-transformers writes a fresh card only for a model tagged as trained (else it
    # re-saves the base model's card); the trainer tags it, this makes sure of it.
    card.add_tags(["generated_from_trainer", "embedtune", "matryoshka", "retrieval"])
    # The card would print the wall-clock training time: the one thing in it that differs
    # between two runs of the same commit, and so in the model folder's hash. The stage
    # logs the time instead.
    card._training_start_time = None
    primary = conf.train.best_metric.removeprefix("eval_")
    evaluator = MatryoshkaIR(
        test, conf.common, primary, name="test", config={"protocol": protocol(conf, test)}
    )
    scores, _ = evaluator.score(model, corpus_embeddings)
    card.set_evaluation_metrics(evaluator, scores)
    return scores
