"""params.yaml is validated strictly: unknown, missing and mistyped keys are named."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from embedtune import params
from embedtune.errors import StageError

ROOT = Path(__file__).resolve().parents[1]


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "profiles").glob("*.yaml")) + [ROOT / "params.yaml"],
    ids=lambda p: p.name,
)
def test_every_profile_is_valid(path):
    p = params.load(path)
    assert p.common.dims == sorted(p.common.dims, reverse=True)


def test_default_params_is_the_cpu_sample_profile():
    assert _default() == yaml.safe_load((ROOT / "profiles" / "cpu-sample.yaml").read_text())


def test_reference_profile_matches_the_reference_run():
    p = params.load(ROOT / "profiles" / "reference-gpu.yaml")
    assert p.common.dims == [768, 512, 256, 128, 64]
    assert p.common.model.name == "nomic-ai/modernbert-embed-base"
    assert p.fetch.name == "AdamLucek/legal-rag-positives-synthetic"
    t = p.train
    assert (t.epochs, t.batch_size, t.gradient_accumulation_steps) == (4, 32, 16)
    assert (t.learning_rate, t.warmup_ratio, t.lr_scheduler) == (2e-5, 0.1, "cosine")
    assert t.best_metric == "eval_dim_128_cosine_ndcg@10"
    assert p.split.test_size == 0.1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["train"].update(epoch=3), "unknown key 'train.epoch'"),
        (lambda d: d["split"].pop("test_size"), "missing key 'split.test_size'"),
        (lambda d: d["train"].update(batch_size="32"), "'train.batch_size': expected int"),
        (lambda d: d["train"].update(batch_size=True), "'train.batch_size': expected int"),
        (lambda d: d["common"].update(dims=[64, 128]), "'common.dims'"),
        (lambda d: d["split"].update(strategy="by_case"), "'split.strategy'"),
        (lambda d: d["common"]["model"].update(bogus=1), "unknown key 'common.model.bogus'"),
        (
            lambda d: d["train"].update(best_metric="eval_dim_100_cosine_ndcg@10"),
            "'train.best_metric'",
        ),
        (
            lambda d: d["train"].update(best_metric="eval_dim_128_cosine_ndcg@5"),
            "'train.best_metric'",
        ),
        (lambda d: d["fetch"].update(source="file", path=None), "'fetch.path'"),
        (lambda d: d["split"].update(test_size=0.6, dev_size=0.5), "split.test_size"),
        (lambda d: d.update(extra={}), "unknown key 'extra'"),
    ],
)
def test_bad_params_name_the_key(edit, message):
    data = copy.deepcopy(_default())
    edit(data)
    with pytest.raises(StageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        params.parse(data)


def test_ints_are_accepted_where_floats_are_expected():
    data = _default()
    data["train"]["learning_rate"] = 1
    assert params.parse(data).train.learning_rate == 1.0


def test_load_names_the_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("common: [unclosed")
    with pytest.raises(StageError, match=str(bad)):
        params.load(bad)


def test_a_renamed_key_names_its_new_name():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["train"]["columns"] = data["train"].pop("pair_order")
    with pytest.raises(StageError, match="'train.columns' was renamed to 'train.pair_order'"):
        params.parse(data)
