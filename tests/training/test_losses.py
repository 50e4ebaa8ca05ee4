"""embedtune.training.losses: each train.loss builds its loss, wrapped in MatryoshkaLoss."""

from __future__ import annotations

import pytest
import torch

from embedtune import config
from embedtune.training.losses import make_loss, training_pairs

INNER = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cached": "CachedMultipleNegativesRankingLoss",
    "gist": "GISTEmbedLoss",
    "cached_gist": "CachedGISTEmbedLoss",
}


def _cfg(loss: str) -> config.Train:
    return config.replace(config.load("params.yaml").train, loss=loss)


@pytest.mark.parametrize("loss", sorted(INNER))
def test_each_choice_builds_its_loss(loss, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    guide = SentenceTransformer(str(tiny_model_dir), device="cpu")
    built = make_loss(model, _cfg(loss), [32, 16], guide)
    assert type(built).__name__ == "MatryoshkaLoss"
    assert type(built.loss).__name__ == INNER[loss]
    assert list(built.matryoshka_dims) == [32, 16]


@pytest.mark.parametrize("loss", ["gist", "cached_gist"])
def test_a_guided_loss_without_a_guide_is_refused(loss, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    with pytest.raises(ValueError, match="guide"):
        make_loss(model, _cfg(loss), [32], None)


def test_the_guide_drops_an_in_batch_duplicate_of_the_positive(tiny_model_dir):
    """Two pairs whose positives are the same text: MNRL counts the other copy as a wrong
    answer, GIST (guided by the same model) masks it, so its loss is lower."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_model_dir), device="cpu")
    texts_a = ["appeal motion evidence", "patent inventor license"]
    texts_p = ["jury verdict ruling", "jury verdict ruling"]
    features = [model.tokenize(t) for t in (texts_a, texts_p)]
    labels = torch.zeros(2)
    mnrl = make_loss(model, _cfg("mnrl"), [32], None).loss
    gist = make_loss(model, _cfg("gist"), [32], model).loss
    with torch.no_grad():
        plain = mnrl(features, labels).item()
        guided = gist(features, labels).item()
    assert guided < plain


ROWS = [{"anchor": "q", "positive": "p"}]


def test_anchor_positive_is_the_default_order():
    assert list(training_pairs(ROWS, "anchor_positive")) == ["anchor", "positive"]


def test_reference_order_puts_the_chunk_first():
    assert list(training_pairs(ROWS, "positive_anchor")) == ["positive", "anchor"]


def test_a_mined_negative_comes_last_in_either_order():
    rows = [{"anchor": "q", "positive": "p", "negative": "n"}]
    assert list(training_pairs(rows, "anchor_positive")) == ["anchor", "positive", "negative"]
    assert list(training_pairs(rows, "positive_anchor")) == ["positive", "anchor", "negative"]
