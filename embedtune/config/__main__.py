"""``python -m embedtune.config --profile profiles/<name>.yaml --out params.yaml``."""

from embedtune import cli
from embedtune.config.render import main

if __name__ == "__main__":
    raise SystemExit(cli.run_stage(main, name="config"))
