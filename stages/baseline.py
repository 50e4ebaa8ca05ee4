"""baseline: score the untouched base model on the test queries at every dimension."""

from embedtune import io, modeling


def main(argv: list[str] | None = None) -> None:
    modeling.eval_cli(argv, "baseline")


if __name__ == "__main__":
    raise SystemExit(io.run_stage(main))
