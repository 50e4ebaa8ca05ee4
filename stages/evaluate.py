"""evaluate: score the fine-tuned model with exactly the code that scored the base model."""

from embedtune import cli
from embedtune.retrieval import evaluation


def main(argv: list[str] | None = None) -> None:
    evaluation.eval_cli(argv, "evaluate")


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
