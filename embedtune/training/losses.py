"""The training loss: MatryoshkaLoss over an in-batch-negatives loss.

- ``mnrl``: MultipleNegativesRankingLoss, the reference recipe.
- ``cached``: its GradCache variant: in-batch negatives number the whole batch at the
  memory cost of ``train.mini_batch_size``.
- ``gist`` / ``cached_gist``: GISTEmbedLoss with the (frozen) base model as guide: an
  in-batch negative the guide scores above the pair's own positive is dropped from the
  softmax, so near-identical passages (common in legal text) stop counting as wrong answers.
"""

from __future__ import annotations

from embedtune import config
from embedtune.training.distributed import is_distributed

GUIDED = ("gist", "cached_gist")


# GIST drops an in-batch negative the guide scores *above* the positive. A copy of the
# positive scores the same, so with margin 0 it stays a "negative" or not by float noise
# (it differed with the thread count): a negative within this of the positive counts as a
# false negative too.
TIE_MARGIN = 1e-4


def make_loss(model, cfg: config.Train, dims: list[int], guide=None):
    """The configured loss; ``guide`` (a second copy of the base model) is required by the
    guided losses and ignored by the others."""
    from sentence_transformers.sentence_transformer import losses

    # Under DDP each process also ranks against the other processes' batches.
    gather = is_distributed()
    if cfg.loss in GUIDED and guide is None:
        raise ValueError(f"loss {cfg.loss!r} needs a guide model")
    if cfg.loss == "cached":
        inner = losses.CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=cfg.mini_batch_size, gather_across_devices=gather
        )
    elif cfg.loss == "gist":
        inner = losses.GISTEmbedLoss(model, guide, margin=TIE_MARGIN, gather_across_devices=gather)
    elif cfg.loss == "cached_gist":
        inner = losses.CachedGISTEmbedLoss(
            model, guide, mini_batch_size=cfg.mini_batch_size, margin=TIE_MARGIN,
            gather_across_devices=gather,
        )  # fmt: skip
    else:
        inner = losses.MultipleNegativesRankingLoss(model, gather_across_devices=gather)
    return losses.MatryoshkaLoss(model, inner, matryoshka_dims=dims)


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
