"""baseline: score the untouched base model on the test queries at every dimension."""

from embedtune import cli
from embedtune.export import encoders
from embedtune.retrieval import evaluation


def main(argv: list[str] | None = None) -> None:
    evaluation.eval_cli(argv, "baseline", encoders.choose)


if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main))
