"""evaluate: score the fine-tuned model with exactly the code that scored the base model."""

from embedtune import io, modeling


def main(argv: list[str] | None = None) -> None:
    modeling.eval_cli(argv, "evaluate")


if __name__ == "__main__":
    raise SystemExit(io.run_stage(main))
