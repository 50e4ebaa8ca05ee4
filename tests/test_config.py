"""params.yaml is validated strictly (unknown and mistyped keys are named), profiles hold only
overrides of the defaults, and the rendered params.yaml reads back to the same values."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import pydantic
import pytest
import yaml

from embedtune import config
from embedtune.errors import StageError

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))
MAX_PROFILE_LINES = 40


def _default() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _profile(name: str) -> config.Params:
    return config.merge(config.load_yaml(ROOT / "profiles" / f"{name}.yaml"))


def _leaves(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_every_profile_is_valid(path):
    p = config.merge(config.load_yaml(path))
    assert p.common.dims == sorted(p.common.dims, reverse=True)
    assert config.load(path) == p  # a profile is a params file that leaves keys out


def test_params_yaml_is_valid_and_is_the_defaults():
    assert config.load(ROOT / "params.yaml") == config.Params() == config.merge({})
    assert config.merge(None) == config.Params()


def test_committed_params_yaml_is_the_rendered_cpu_sample_profile():
    expected = config.render(_profile("cpu-sample"), profile="profiles/cpu-sample.yaml")
    assert (ROOT / "params.yaml").read_text(encoding="utf-8") == expected


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_profiles_hold_only_their_overrides(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), "a profile starts with a comment saying what it is"
    assert len(text.splitlines()) <= MAX_PROFILE_LINES
    defaults = dict(_leaves(config.Params().model_dump()))
    for key, value in _leaves(yaml.safe_load(text) or {}):
        assert value != defaults[key], f"{path.name}: {key} restates its default"


def test_the_default_profile_overrides_nothing():
    assert config.load_yaml(ROOT / "profiles" / "cpu-sample.yaml") is None


def test_reference_profile_matches_the_reference_run():
    p = _profile("reference-gpu")
    assert p.common.dims == [768, 512, 256, 128, 64]
    assert (p.common.max_seq_length, p.common.eval_batch_size) == (512, 16)
    assert (p.common.query_prompt, p.common.document_prompt) == ("", "")
    m = p.common.model
    assert (m.source, m.package, m.name, m.revision) == (
        "hub",
        None,
        "nomic-ai/modernbert-embed-base",
        "main",
    )
    assert p.fetch.name == "AdamLucek/legal-rag-positives-synthetic"
    assert (p.fetch.source, p.fetch.revision, p.fetch.split) == ("hub", "main", "train")
    assert p.fetch.corpus.source == "pairs"
    t = p.train
    assert (t.epochs, t.batch_size, t.gradient_accumulation_steps) == (4, 32, 16)
    assert (t.learning_rate, t.warmup_ratio, t.lr_scheduler) == (2e-5, 0.1, "cosine")
    assert (t.pair_order, t.loss, t.attention_dropout, t.logging_steps) == (
        "positive_anchor",
        "mnrl",
        None,
        10,
    )
    assert t.best_metric == "eval_dim_128_cosine_ndcg@10"
    assert (p.split.strategy, p.split.test_size, p.split.dev_size) == ("random", 0.1, 0.0)
    assert p.build_ir_eval.corpus == "rows"


def test_fixed_profile_fixes_the_reference_protocol():
    p = _profile("fixed-gpu")
    assert p.common.dims == [768, 512, 256, 128, 64]
    assert (p.common.query_prompt, p.common.document_prompt) == (
        "search_query: ",
        "search_document: ",
    )
    assert p.common.model.name == "nomic-ai/modernbert-embed-base"
    assert (p.fetch.source, p.fetch.corpus.source) == ("hub", "pairs")
    assert (p.split.strategy, p.split.dev_size, p.build_ir_eval.corpus) == (
        "by_chunk",
        0.1,
        "unique",
    )
    t = p.train
    assert (t.epochs, t.batch_size, t.mini_batch_size, t.loss) == (4, 512, 32, "cached")
    assert (t.learning_rate, t.pair_order, t.attention_dropout) == (2e-5, "anchor_positive", None)
    assert (t.gradient_accumulation_steps, t.logging_steps) == (1, 10)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_render_reads_back_to_the_same_params(path, tmp_path):
    p = config.merge(config.load_yaml(path))
    out = tmp_path / "params.yaml"
    out.write_text(config.render(p, profile=f"profiles/{path.name}"))
    assert config.load(out) == p
    assert all(len(line) <= 110 for line in out.read_text().splitlines())


def test_render_round_trips_awkward_floats_and_strings(tmp_path):
    p = config.merge(
        {
            "common": {"query_prompt": "yes", "document_prompt": "a # b: 'c' \"d\" ünï "},
            "fetch": {"path": "2e-5", "columns": {"chunk_id": "null"}},
            "train": {"learning_rate": 1 / 3, "epochs": 2e-7, "warmup_ratio": 0.1 + 0.2},
            "generate": {"model": "", "temperature": 1.9999999999999998, "timeout_s": 1e22},
        }
    )
    p = config.replace(
        p, generate=config.replace(p.generate, roundtrip=config.RoundTrip(min_score=-5e-324))
    )
    out = tmp_path / "params.yaml"
    out.write_text(config.render(p))
    back = config.load(out)
    assert back == p
    assert back.train.learning_rate == 1 / 3 and back.generate.roundtrip.min_score == -5e-324
    assert "learning_rate: 0.3333333333333333 " in out.read_text()
    assert "epochs: 2.0e-7 " in out.read_text()  # PyYAML reads 2e-07 as a string


def test_every_field_has_a_description_and_a_reference_row():
    rows = config.reference_rows()
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys))
    assert {k for k, _ in _leaves(config.Params().model_dump())} <= set(keys)
    assert all(r["description"] for r in rows)
    by_key = {r["key"]: r for r in rows}
    assert by_key["train.batch_size"] | {"description": ""} == {
        "key": "train.batch_size",
        "type": "int",
        "default": "32",
        "allowed": ">= 1",
        "description": "",
    }
    assert by_key["split.strategy"]["allowed"] == "random, by_chunk, by_document"
    assert by_key["train.attention_dropout"]["type"] == "float | null"
    assert by_key["train.attention_dropout"]["allowed"] == ">= 0; < 1"
    assert by_key["common.dims"]["type"] == "list[int]"
    assert by_key["train"]["type"] == "section"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["train"].update(epoch=3), "unknown key 'train.epoch'"),
        (lambda d: d["split"].update(test_size=math.nan), "'split.test_size': Input should be a"),
        (
            lambda d: d["train"].update(batch_size="32"),
            "'train.batch_size': Input should be a valid integer, got str '32'",
        ),
        (
            lambda d: d["train"].update(batch_size=True),
            "'train.batch_size': Input should be a valid integer, got bool True",
        ),
        (lambda d: d["train"].update(batch_size=0), "'train.batch_size': Input should be greater"),
        (lambda d: d["common"].update(dims=[64, 128]), "'common.dims'"),
        (lambda d: d["common"].update(dims=[128, 0]), "'common.dims[1]'"),
        (lambda d: d["common"].update(dims=[]), "'common.dims'"),
        (lambda d: d["split"].update(strategy="by_case"), "'split.strategy'"),
        (
            lambda d: (
                d.update(split={"strategy": "by_document"})
                or d["fetch"]["columns"].update(document_id=None)
            ),
            "'split.strategy': 'by_document' needs fetch.columns.document_id",
        ),
        (lambda d: d["common"]["model"].update(bogus=1), "unknown key 'common.model.bogus'"),
        (lambda d: d["common"]["model"].update(source="hub"), "'common.model.name': required"),
        (
            lambda d: d["common"]["model"].update(source="hub", name="x/y"),
            "'common.model.revision': pin a revision",
        ),
        (
            lambda d: d["train"].update(best_metric="eval_dim_100_cosine_ndcg@10"),
            "'train.best_metric'",
        ),
        (
            lambda d: d["train"].update(best_metric="eval_dim_128_cosine_ndcg@5"),
            "'train.best_metric'",
        ),
        (lambda d: d["fetch"].update(source="file", path=None), "'fetch.path'"),
        (lambda d: d["fetch"].update(source="hub"), "'fetch.name': required when source is 'hub'"),
        (lambda d: d["fetch"]["corpus"].update(path=None), "'fetch.corpus.path'"),
        (lambda d: d["fetch"].update(max_truncated_share=1.5), "'fetch.max_truncated_share'"),
        (lambda d: d["split"].update(test_size=0.6, dev_size=0.5), "'split.test_size'"),
        (lambda d: d["split"].update(test_size=0), "'split.test_size'"),
        (lambda d: d["train"].update(learning_rate=0), "'train.learning_rate'"),
        (lambda d: d["train"].update(attention_dropout=1.0), "'train.attention_dropout'"),
        (
            lambda d: d["train"]["hard_negatives"].update(range_min=50),
            "'train.hard_negatives.range_max': must be > range_min",
        ),
        (lambda d: d["export"].update(formats=["onnx", "onnx"]), "'export.formats'"),
        (lambda d: d["export"].update(formats=["tflite"]), "'export.formats[0]'"),
        (lambda d: d["export"].update(opset=17), "'export.opset'"),
        (lambda d: d["chunk"].update(overlap=256), "'chunk.overlap': must be < size"),
        (lambda d: d["generate"].update(temperature=2.5), "'generate.temperature'"),
        (lambda d: d["generate"].update(dedup_threshold=0), "'generate.dedup_threshold'"),
        (lambda d: d["generate"]["roundtrip"].update(top_k=0), "'generate.roundtrip.top_k'"),
        (lambda d: d.update(train=[1]), "'train': Input should be a valid dictionary"),
        (lambda d: d.update(extra={}), "unknown key 'extra'"),
    ],
)
def test_bad_params_name_the_key(edit, message):
    data = copy.deepcopy(_default())
    edit(data)
    with pytest.raises(StageError, match=re.escape(message)):
        config.parse(data)


def test_missing_keys_take_their_defaults():
    data = _default()
    del data["split"]["test_size"], data["train"]
    p = config.parse(data)
    assert p.split.test_size == 0.1 and p.train == config.Train()


def test_ints_are_accepted_where_floats_are_expected():
    data = _default()
    data["train"]["learning_rate"] = 1
    lr = config.parse(data).train.learning_rate
    assert lr == 1.0 and isinstance(lr, float)


def test_every_error_is_reported_one_per_line():
    data = _default()
    data["train"].update(batch_size="32", epoch=3)
    with pytest.raises(StageError) as err:
        config.parse(data)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("params") and "'train." in line for line in lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "train:\n  learning_rate: .nan\n",
            "'train.learning_rate': Input should be a finite number",
        ),
        ("train:\n  epochs: .inf\n", "'train.epochs': Input should be a finite number"),
        ("generate:\n  timeout_s: -.inf\n", "'generate.timeout_s': Input should be a finite"),
        ("train:\n  epochs: 2\n  batch_size: 8\n  epochs: 3\n", "duplicate key 'epochs'"),
    ],
)
def test_load_refuses_nan_inf_and_duplicate_keys(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(StageError, match=re.escape(message)) as err:
        config.load(path)
    assert str(err.value).startswith(str(path))


def test_a_duplicate_key_names_the_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  epochs: 2\n  batch_size: 8\n  epochs: 3\n")
    with pytest.raises(StageError, match=r"duplicate key 'epochs'.*line 4") as err:
        config.load_yaml(path)
    assert str(path) in str(err.value)


def test_yaml_merge_keys_may_override_what_they_merge(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("a: &base {x: 1, y: 2}\nb:\n  <<: *base\n  y: 3\n")
    assert config.load_yaml(path) == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}


def test_load_names_the_file(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("common: [unclosed")
    with pytest.raises(StageError, match=str(bad)):
        config.load(bad)
    bad.write_text("train:\n  batch_size: many\n")
    with pytest.raises(StageError, match=rf"^{re.escape(str(bad))}: params key 'train.batch_size'"):
        config.load(bad)


def test_a_renamed_key_names_its_new_name():
    data = _default()
    data["train"]["columns"] = data["train"].pop("pair_order")
    with pytest.raises(StageError, match="'train.columns' was renamed to 'train.pair_order'"):
        config.parse(data)


@pytest.mark.parametrize("value", ["sk-proj-abc123SECRET", "my key", "1ABC"])
def test_an_api_key_pasted_as_the_variable_name_is_refused_without_echo(value):
    data = _default()
    data["generate"]["api_key_env"] = value
    with pytest.raises(StageError, match="'generate.api_key_env': want the NAME") as err:
        config.parse(data)
    assert value not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no traceback shows it


def test_params_are_frozen_and_replace_validates_again():
    p = config.Params()
    with pytest.raises(pydantic.ValidationError):
        p.train.batch_size = 8
    q = config.replace(p, train=config.replace(p.train, batch_size=8))
    assert (q.train.batch_size, p.train.batch_size) == (8, 32)
    assert q.common is p.common
    with pytest.raises(StageError, match="'batch_size': Input should be greater"):
        config.replace(p.train, batch_size=0)
    with pytest.raises(StageError, match="'train.best_metric'"):
        config.replace(p, common=config.replace(p.common, dims=[32, 16]))


def test_check_token_limits_and_advice():
    p = config.merge({"common": {"max_seq_length": 128}})
    with pytest.raises(StageError, match="'chunk.size': 256 exceeds common.max_seq_length"):
        config.check_token_limits(p, ("chunk.size",))
    config.check_token_limits(p, ("generate.max_question_tokens",))
    assert config.advice(config.Params()) == []
    assert "in-batch negatives" in config.advice(_profile("reference-gpu"))[0]


def test_the_cli_writes_params_from_a_profile(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("# mine\ntrain:\n  epochs: 2\n")
    out = tmp_path / "params.yaml"
    config.main(["--profile", str(profile), "--out", str(out)])
    assert config.load(out) == config.merge({"train": {"epochs": 2}})
    assert str(profile) in out.read_text().splitlines()[0]
    profile.write_text("train:\n  epochs: two\n")
    with pytest.raises(StageError, match=rf"^{re.escape(str(profile))}: params key 'train.epochs'"):
        config.main(["--profile", str(profile), "--out", str(out)])
    assert config.load(out).train.epochs == 2  # a failed run leaves the old file
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    "section, edit, message",
    [
        ("generate", {"api_key_env": "sk-live-abc123"}, "NAME of an environment variable"),
        ("generate", {"concurrency": 0}, "generate.concurrency"),
        ("generate", {"roundtrip": {"retriever": "bm9", "top_k": 3, "min_score": 0}}, "bm25"),
        ("chunk", {"overlap": 256}, "chunk.overlap"),
        ("chunk", {"on_bad_document": "ignore"}, "chunk.on_bad_document"),
    ],
)
def test_bad_documents_params_name_the_key(section, edit, message):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data[section].update(edit)
    with pytest.raises(StageError, match=message) as err:
        config.parse(data)
    assert "sk-live-abc123" not in str(err.value)  # a pasted key is never echoed
