"""The stage runner's logging: library code logs without naming its caller, and the stage
that runs it adds its own name once, in the handler."""

from __future__ import annotations

import logging
import subprocess
import sys

from embedtune import cli
from embedtune.errors import StageError
from tests.pipeline import ROOT


def _emit(name: str, capsys) -> str:
    cli.setup_logging(name)
    log = logging.getLogger("embedtune.training.checkpoints")  # any library module
    log.info("resuming from checkpoint-4")
    log.warning("fused graph differed")
    log.debug("not shown at the default level")
    return capsys.readouterr().err


def test_the_stage_name_is_added_by_the_handler(capsys):
    err = _emit("train", capsys)
    assert err.splitlines() == [
        "train: resuming from checkpoint-4",
        "train: warning: fused graph differed",
    ]


def test_a_benchmark_gets_its_own_prefix_or_none(capsys):
    assert _emit("", capsys).splitlines() == [
        "resuming from checkpoint-4",
        "warning: fused graph differed",
    ]


def test_setup_twice_keeps_one_handler(capsys):
    cli.setup_logging("a")
    cli.setup_logging("b")
    logging.getLogger("embedtune.io").info("once")
    assert capsys.readouterr().err == "b: once\n"


def test_run_stage_names_the_stage_from_its_module(tmp_path):
    """Run as `python -m stages.<name>`, the module is __main__: the name comes from its spec."""
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "probe.py").write_text(
        "import logging\n"
        "from embedtune import cli\n"
        "from embedtune.errors import StageError\n"
        "def main(argv):\n"
        "    logging.getLogger('embedtune.data.records').info('read 3 rows')\n"
        "    raise StageError('data.csv row 2 column text: empty')\n"
        "if __name__ == '__main__':\n"
        "    raise SystemExit(cli.run_stage(main))\n"
    )
    env_path = f"{tmp_path}:{ROOT}"
    proc = subprocess.run(
        [sys.executable, "-m", "stages.probe"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": ""},
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "probe: read 3 rows",
        "probe: error: data.csv row 2 column text: empty",
    ]


def test_run_stage_exit_codes(capsys):
    def bad(_argv):
        raise StageError("params key 'x': nope")

    def interrupted(_argv):
        raise KeyboardInterrupt

    assert cli.run_stage(bad) == 1
    assert "error: params key 'x': nope" in capsys.readouterr().err
    assert cli.run_stage(interrupted) == 130
    assert "interrupted: no output was written" in capsys.readouterr().err
    assert cli.run_stage(lambda _argv: None) == 0
