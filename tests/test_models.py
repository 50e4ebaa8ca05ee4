"""Model loading: the Transformer module's folder and config are read from the model's own
files, and a folder that is not a sentence-transformers model is named."""

from __future__ import annotations

import json

import pytest

from embedtune import config, models
from embedtune.errors import StageError


def test_dropout_is_read_from_the_transformer_modules_config_alone(tmp_path):
    """The keys to override come from the Transformer module's folder (a subfolder here,
    as some models ship it), which holds a config and no weights."""
    from transformers import BertConfig

    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 0, "name": "0", "path": "0_Transformer", "type": "x.Transformer"}])
    )
    BertConfig(attention_probs_dropout_prob=0.2).save_pretrained(tmp_path / "0_Transformer")
    assert models.transformer_config(tmp_path).attention_probs_dropout_prob == 0.2
    with pytest.raises(StageError, match="modules.json: not found"):
        models.transformer_config(tmp_path / "0_Transformer")


def test_a_folder_that_is_not_a_model_is_named(tmp_path):
    with pytest.raises(StageError, match="model folder not found"):
        models.load_model(tmp_path / "missing", config.Common())


def test_dims_beyond_the_models_width_name_the_key(tiny_model_dir):
    common = config.replace(config.Common(), dims=[4096, 16], max_seq_length=64)
    with pytest.raises(StageError, match="'common.dims'"):
        models.load_model(tiny_model_dir, common)


def test_the_loaded_model_takes_the_configured_length(tiny_model_dir):
    common = config.replace(config.Common(), dims=[32, 16], max_seq_length=48)
    assert models.load_model(tiny_model_dir, common).max_seq_length == 48
