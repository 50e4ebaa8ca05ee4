"""The benchmarks that use the stages' code find it when run as the README says
(`python benchmarks/<name>.py`, from anywhere): `stages` is not an installed package."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.pipeline import ROOT

PROBE = (
    "import importlib.util, runpy, sys; runpy.run_path(sys.argv[1], run_name='probe'); "
    "print(importlib.util.find_spec('stages') is not None)"
)


@pytest.mark.parametrize("name", ["eval_speed", "recipes", "train_throughput"])
def test_a_benchmark_run_as_a_script_can_import_the_stages(name, tmp_path):
    script = ROOT / "benchmarks" / f"{name}.py"
    assert "from stages import" in script.read_text()  # the import this test is about
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(script)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
