"""chunk: documents (txt, md, html, pdf) to passages bounded in the base model's tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from embedtune.errors import StageError
from stages import chunk as chunk_stage
from tests.pipeline import ROOT


def _params(tmp_path, model_dir, folder, **chunk) -> str:
    conf = yaml.safe_load((ROOT / "params.yaml").read_text())
    conf["common"].update(max_seq_length=64)
    conf["common"]["model"].update(source="local", package=None, path=str(model_dir))
    conf["chunk"].update({"folder": str(folder), "size": 48, "overlap": 8, **chunk})
    conf["generate"].update(max_question_tokens=32)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(conf))
    return str(path)


def test_stage_writes_passages_and_summary(tmp_path, docs, tiny_model_dir, capsys):
    out = tmp_path / "out"
    chunk_stage.main(["--params", _params(tmp_path, tiny_model_dir, docs), "--out", str(out)])
    rows = [json.loads(x) for x in (out / "passages.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passages"] == len(rows) and summary["documents"] == 4
    assert summary["tokens_max"] <= 48 and summary["other_files_ignored"] == ["notes.csv"]
    assert {"id", "text", "document_id", "start", "end", "tokens"} <= set(rows[0])
    assert "tokens per passage min" in capsys.readouterr().out


def test_size_above_max_seq_length_is_an_error(tmp_path, docs, tiny_model_dir):
    params = _params(tmp_path, tiny_model_dir, docs, size=65, overlap=0)
    with pytest.raises(StageError, match="'chunk.size'.*max_seq_length"):
        chunk_stage.main(["--params", params, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_optional_stage_modules_import_no_heavy_library():
    """As tests/test_io.py checks for the root pipeline's stages."""
    from tests.test_io import HEAVY

    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[2:]: importlib.import_module(name)\n"
        "print(' '.join(h for h in sys.argv[1].split(',') if h in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, ",".join(HEAVY), "stages.chunk", "stages.generate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == []


def test_optional_pipeline_declares_every_project_file_it_imports():
    from tests.test_dvc_deps import missing_deps, unneeded_deps

    pipeline = yaml.safe_load((ROOT / "documents" / "dvc.yaml.off").read_text())
    assert set(pipeline["stages"]) == {"chunk", "generate"}
    assert missing_deps(pipeline, ROOT) == {}
    assert unneeded_deps(pipeline, ROOT) == {}
    assert all(s["wdir"] == ".." for s in pipeline["stages"].values())
