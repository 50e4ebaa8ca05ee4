"""evaluate: score the fine-tuned model with exactly the code that scored the base model.

The corpus embeddings come from the train stage's last dev evaluation of the chosen
checkpoint when they match this model (``--reuse-embeddings``), so the knowledge base is not
encoded a second time; otherwise the encoder ``common.encoder`` picks encodes it.
"""

from embedtune import cli
from embedtune.export import encoders
from embedtune.retrieval import evaluation


def main(argv: list[str] | None = None) -> None:
    evaluation.eval_cli(argv, "evaluate", encoders.choose)


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
