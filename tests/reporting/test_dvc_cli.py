"""embedtune.reporting.dvc_cli: the one way the reporting commands run git and dvc."""

from __future__ import annotations

import sys

import pytest

from embedtune.reporting.dvc_cli import dvc, run_command


def test_stdout_is_returned(tmp_path):
    out = run_command([sys.executable, "-c", "print('hello')"], tmp_path)
    assert out == "hello\n"


def test_a_failure_names_the_command_its_status_and_its_stderr(tmp_path):
    script = "import sys; sys.stderr.write('  something broke\\n'); sys.exit(3)"
    with pytest.raises(RuntimeError) as err:
        run_command([sys.executable, "-c", script], tmp_path, shown="probe --flag")
    assert str(err.value) == "`probe --flag` failed (exit 3):\nsomething broke"


def test_dvc_is_this_interpreters_and_named_as_dvc(tmp_path):
    assert dvc(["--version"], tmp_path).strip()[0].isdigit()
    with pytest.raises(RuntimeError) as err:
        dvc(["status", "--json"], tmp_path)  # not a DVC repository
    message = str(err.value)
    assert message.startswith("`dvc status --json` failed (exit ")
    assert "not inside of a DVC repository" in message  # dvc's own stderr
