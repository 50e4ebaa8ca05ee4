"""The train stage's evaluator: retrieval metrics at every Matryoshka dimension from one
encoding pass, in the form sentence-transformers' trainer expects.

sentence-transformers is imported at the top because MatryoshkaIR must subclass its
BaseEvaluator at module level; stages/train.py therefore imports this module only inside
build_trainer, so the stage module itself still imports quickly (it is imported before the
stage's signal handler is installed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

from embedtune.config import Common
from embedtune.metrics import key
from embedtune.retrieval import search


class MatryoshkaIR(BaseEvaluator):
    """Scores ``data`` at every dimension of ``common.dims`` as ``dim_<d>_cosine_<metric>``;
    ``primary`` (one of those keys) is the metric that picks the best checkpoint."""

    def __init__(
        self,
        data: search.IRData,
        common: Common,
        primary: str,
        name: str = "",
        config: dict | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.common = common
        self.primary_metric = primary
        self.name = name  # the model card's dataset label
        self.config = config or {}
        self.best_corpus: BestCorpus | None = None

    def get_config_dict(self) -> dict:
        """What the model card prints under the metrics (here: how they were obtained)."""
        return self.config

    def __call__(self, model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]:
        """Encode queries and corpus once and return every dimension's metrics; the corpus
        embeddings of the best evaluation so far are kept (``best_corpus``)."""
        scores, c_emb = self.score(model)
        # Strictly greater, as the trainer picks its best checkpoint: on a tie both keep the
        # earlier one, so the rows kept here are the chosen checkpoint's whenever the steps
        # agree (``corpus_of_step``).
        if self.best_corpus is None or scores[self.primary_metric] > self.best_corpus.score:
            self.best_corpus = BestCorpus(scores[self.primary_metric], steps, c_emb)
        return scores

    def score(self, model, corpus_embeddings: np.ndarray | None = None):
        """(every dimension's metrics, the corpus embeddings as float32 numpy); with
        ``corpus_embeddings`` (rows in ``data.corpus`` order, made by this model) only the
        queries are encoded."""
        import torch

        common = self.common
        queries = list(self.data.queries.values())
        q_emb = search.encode(
            model, queries, common.query_prompt, common.eval_batch_size, document=False
        )
        if corpus_embeddings is None:
            passages = list(self.data.corpus.values())
            c_emb = search.encode(
                model, passages, common.document_prompt, common.eval_batch_size, document=True
            )
            corpus_embeddings = c_emb.float().numpy()
        c_emb = torch.from_numpy(np.ascontiguousarray(corpus_embeddings))
        results = search.evaluate_embeddings(q_emb, c_emb, self.data, common.dims)
        # The trainer's names (eval_dim_128_cosine_ndcg@10) keep the evaluator's "cosine_".
        scores = {
            key(d, f"cosine_{name}"): v for d, (m, _) in results.items() for name, v in m.items()
        }
        return scores, corpus_embeddings

    def corpus_of_step(self, step: int) -> np.ndarray | None:
        """The corpus embeddings the evaluation at optimizer step ``step`` made, if it was
        the best so far (None otherwise): what the chosen checkpoint gives the corpus."""
        best = self.best_corpus
        return best.embeddings if best is not None and best.steps == step else None


@dataclass(frozen=True)
class BestCorpus:
    """The corpus rows of the best evaluation so far: its primary metric, step, embeddings."""

    score: float
    steps: int
    embeddings: np.ndarray
