"""The export refuses model folders it cannot reproduce outside the graph, naming the file."""

from __future__ import annotations

import json
import shutil

import pytest

from embedtune import export
from embedtune.errors import StageError
from embedtune.export import layout
from tests.tiny import (
    load_st,
)


def test_unsupported_pooling_or_module_fails_clearly(tmp_path, exported):
    model_dir, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    pool_cfg = bad / "1_Pooling" / "config.json"
    cfg = json.loads(pool_cfg.read_text())
    cfg.pop("pooling_mode", None)
    for k in list(cfg):
        if k.startswith("pooling_mode_"):
            cfg.pop(k)
    pool_cfg.write_text(json.dumps({**cfg, "pooling_mode": "weightedmean"}))
    with pytest.raises(StageError, match=r"1_Pooling/config.json: pooling mode 'weightedmean'"):
        layout.read_encoder_config(bad, 64)
    out = tmp_path / "out"
    with pytest.raises(StageError, match="not supported"):
        export.export_model(load_st(model_dir), bad, out, ["onnx"], opset=18)
    assert not out.exists()  # refused before anything is written

    modules = json.loads((bad / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "x.models.Dense"})
    (bad / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(StageError, match="module 'x.models.Dense' is not supported"):
        layout.read_encoder_config(bad, 64)


def test_a_folder_without_a_readable_modules_list_is_named(tmp_path):
    """The export reads modules.json through models.read_modules, as model loading does."""
    with pytest.raises(StageError, match="modules.json: not found"):
        layout.read_encoder_config(tmp_path, 64)
    (tmp_path / "modules.json").write_text("[{")
    with pytest.raises(StageError, match="modules.json: cannot read JSON"):
        layout.read_encoder_config(tmp_path, 64)
    (tmp_path / "modules.json").write_text('{"type": "x.Transformer"}')
    with pytest.raises(StageError, match="modules.json: not a list of modules"):
        layout.read_encoder_config(tmp_path, 64)


def test_legacy_pooling_flags_are_read():
    assert layout.pooling_mode({"pooling_mode_cls_token": True}, "cfg") == "cls"
    assert layout.pooling_mode({"pooling_mode_mean_tokens": True}, "cfg") == "mean"
    with pytest.raises(StageError, match="'cls\\+mean' is not supported"):
        layout.pooling_mode({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": True}, "c")


# --- the stage -----------------------------------------------------------------------------
