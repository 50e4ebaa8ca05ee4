"""The train stage's evaluator: retrieval metrics at every Matryoshka dimension from one
encoding pass, in the form sentence-transformers' trainer expects.

sentence-transformers is imported at the top because MatryoshkaIR must subclass its
BaseEvaluator at module level; stages/train.py therefore imports this module only inside
build_trainer, so the stage module itself still imports quickly (it is imported before the
stage's signal handler is installed).
"""

from __future__ import annotations

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

    def get_config_dict(self) -> dict:
        """What the model card prints under the metrics (here: how they were obtained)."""
        return self.config

    def __call__(self, model, output_path=None, epoch=-1, steps=-1) -> dict[str, float]:
        """Encode queries and corpus once and return every dimension's metrics."""
        common = self.common
        results = search.evaluate_model(
            model,
            self.data,
            common.dims,
            common.eval_batch_size,
            common.query_prompt,
            common.document_prompt,
        )
        # The trainer's names (eval_dim_128_cosine_ndcg@10) keep the evaluator's "cosine_".
        return {
            key(d, f"cosine_{name}"): v for d, (m, _) in results.items() for name, v in m.items()
        }
