"""generate: LLM questions per passage, cached, bounded, retried, filtered and counted.

The endpoint is always on 127.0.0.1: a scripted loopback server (tests/llm_server.py) for
what a real server will not do on demand (429, a hang, malformed JSON, holding requests);
the real `transformers serve` on a tiny Llama, for the protocol itself, is in
tests/documents/test_llm_client.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from embedtune import config
from embedtune.documents import answer_cache, question_filters
from embedtune.errors import StageError
from stages import generate
from tests.llm_server import LoopbackLLM
from tests.pipeline import ROOT, env
from tests.tiny import gen_params, passages_file

KEY_ENV = "EMBEDTUNE_TEST_LLM_KEY"
SECRET = "sk-test-not-a-real-key-4242"


# --- prompt template ------------------------------------------------------------


def test_shipped_template_has_both_placeholders():
    text = (ROOT / "prompts" / "generate.txt").read_text()
    assert "{passage}" in text and "{n}" in text


# --- reading chunk's passages -----------------------------------------------------


def test_passages_are_read_with_every_problem_named(tmp_path):
    path = tmp_path / "passages.jsonl"
    rows = [
        {"id": "a.txt:0", "text": " first ", "document_id": "a.txt"},
        {"id": 7, "text": "second"},  # an integer id, no document id
        {"id": "a.txt:0", "text": "again"},
        {"id": " ", "text": None},
        {"id": "b.txt:0", "text": ""},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(StageError) as err:
        generate.read_passages(path)
    assert str(err.value).splitlines()[1:] == [
        f"{path}: line 3, column 'id': 'a.txt:0' appears twice",
        f"{path}: line 4, column 'id': empty or whitespace-only text",
        f"{path}: line 4, column 'text': missing value (None/NaN)",
        f"{path}: line 5, column 'text': empty or whitespace-only text",
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert generate.read_passages(path) == [
        {"id": "a.txt:0", "text": "first", "document_id": "a.txt"},
        {"id": "7", "text": "second", "document_id": None},
    ]


# --- the base-model encoder, and the filters that use it -----------------------------


def _common(**changes) -> config.Common:
    """The default common section for the tiny model (32 dims, 64 positions)."""

    changes = {"max_seq_length": 64, "dims": [32, 16], **changes}
    return config.replace(config.load(ROOT / "params.yaml").common, **changes)


def test_the_encoder_is_the_base_model_with_its_prompts(tiny_model_dir):
    from embedtune.models import load_model

    encode = generate._encoder(tiny_model_dir, _common(query_prompt="court ", document_prompt=""))
    texts = ["contract damages", "camera face"]
    questions, documents = encode(texts, document=False), encode(texts, document=True)
    assert questions.shape == documents.shape == (2, 32)
    assert [float(norm) for norm in questions.norm(dim=1)] == pytest.approx([1.0, 1.0])
    model = load_model(tiny_model_dir, _common())
    assert model.max_seq_length == 64
    expected = model.encode(["court " + t for t in texts], normalize_embeddings=True)
    assert questions.cpu().numpy() == pytest.approx(expected, abs=1e-6)
    assert documents.cpu().numpy() == pytest.approx(
        model.encode(texts, normalize_embeddings=True), abs=1e-6
    )


def test_the_encoder_refuses_dims_the_base_model_cannot_serve(tiny_model_dir):
    with pytest.raises(StageError, match=r"'common.dims': \[64, 32\] exceeds .* dimension 32"):
        generate._encoder(tiny_model_dir, _common(dims=[64, 32]))


def test_near_duplicates_and_model_roundtrip_with_the_base_model(tiny_model_dir):
    encode = generate._encoder(tiny_model_dir, _common())
    passages = ["court contract damages appeal", "camera face image voice video"]
    cands = [(0, "court contract damages"), (0, "court contract damages appeal"), (1, "camera")]
    g = gen_params(dedup_threshold=0.9, roundtrip={"retriever": "model", "min_score": -1.0})
    out = question_filters.apply(cands, passages, len, g, encode)
    assert out.dropped["near_duplicate"] >= 1
    assert sum(out.dropped.values()) + len(out.kept) == len(cands)


# --- the stage against the loopback server --------------------------------------------


@pytest.fixture
def project(tmp_path, tiny_model_dir, monkeypatch):
    """A params file, passages and paths for one stage run; the key is set in the env."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.delenv(answer_cache.CACHE_ENV, raising=False)
    rows = passages_file(tmp_path / "passages.jsonl")

    def write_params(base_url: str, **gen) -> list[str]:
        conf = yaml.safe_load((ROOT / "params.yaml").read_text())
        # The tiny model's 32 dims: the model filters load it with embedtune.models.load_model.
        conf["common"].update(max_seq_length=64, dims=[32, 16])
        conf["train"]["best_metric"] = "eval_dim_16_cosine_ndcg@10"
        conf["common"]["model"].update(source="local", package=None, path=str(tiny_model_dir))
        conf["generate"].update(
            {
                "base_url": base_url,
                "model": "tiny",
                "api_key_env": KEY_ENV,
                "prompt": str(ROOT / "prompts" / "generate.txt"),
                "max_question_tokens": 48,
                "timeout_s": 5,
                "max_retries": 2,
                **gen,
            }
        )
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(conf))
        return [
            "--params", str(tmp_path / "params.yaml"),
            "--passages", str(tmp_path / "passages.jsonl"),
            "--out", str(tmp_path / "out" / "pairs.jsonl"),
            "--metrics", str(tmp_path / "metrics.json"),
            "--cache", str(tmp_path / "cache"),
            "--no-progress",
        ]  # fmt: skip

    return tmp_path, rows, write_params


def _outputs(tmp):
    return (tmp / "out" / "pairs.jsonl").read_text(), (tmp / "metrics.json").read_text()


def test_pairs_and_metrics_then_a_rerun_makes_no_request(project, capsys):
    tmp, rows, write_params = project
    with LoopbackLLM(3) as srv:
        argv = write_params(srv.base_url)
        generate.main(argv)
        assert srv.requests == len(rows)
        first = _outputs(tmp)
        generate.main(argv)
        assert srv.requests == len(rows), "the rerun asked the server again"
        assert _outputs(tmp) == first
        assert srv.auth[0] == f"Bearer {SECRET}"
    pairs = [json.loads(x) for x in first[0].splitlines()]
    metrics = json.loads(first[1])
    assert set(pairs[0]) == {"question", "text", "chunk_id", "document_id"}
    assert metrics["passages"] == len(rows) and metrics["pairs"] == len(pairs)
    assert metrics["questions_generated"] == 3 * len(rows)
    assert metrics["llm_completion_tokens"] == 20 * len(rows)
    log = capsys.readouterr().out
    assert f"{len(rows)} from the cache, 0 requested" in log
    # The key is never written anywhere: outputs, cache, log.
    everything = log + first[0] + first[1]
    everything += "".join(path.read_text() for path in (tmp / "cache").rglob("*.json"))
    assert SECRET not in everything


def test_missing_key_variable_fails_before_any_request(project, monkeypatch):
    tmp, _, write_params = project
    monkeypatch.delenv(KEY_ENV)
    with LoopbackLLM(3) as srv:
        argv = write_params(srv.base_url)
        with pytest.raises(StageError, match=f"environment variable {KEY_ENV}.*not set"):
            generate.main(argv)
        assert srv.requests == 0
    assert not (tmp / "out" / "pairs.jsonl").exists() and not (tmp / "metrics.json").exists()


def test_no_key_for_a_local_server(project, monkeypatch):
    tmp, rows, write_params = project
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # must not leak to a server that needs none
    with LoopbackLLM(3) as srv:
        generate.main(write_params(srv.base_url, api_key_env=None))
        assert srv.requests == len(rows)
        assert all(SECRET not in a for a in srv.auth)


def test_concurrency_is_bounded(project):
    tmp, rows, write_params = project
    limit = 3

    def hold_until_full(count, prompt):
        # Each request waits until `limit` are in flight (so the limit is reached for sure),
        # then a little longer so that any request beyond the limit would be seen.
        deadline = time.monotonic() + 10
        while srv.in_flight < limit and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        return None

    passages_file(tmp / "passages.jsonl", n=12)
    with LoopbackLLM(3, hold_until_full) as srv:
        generate.main(write_params(srv.base_url, concurrency=limit))
        assert srv.requests == 12
        assert srv.max_in_flight == limit


def test_429_then_success_is_retried(project, capsys):
    tmp, rows, write_params = project
    with LoopbackLLM(3, lambda c, prompt: ("status", 429) if c == 1 else None) as srv:
        generate.main(write_params(srv.base_url, concurrency=1))
        assert srv.requests == len(rows) + 1
    assert "(1 retries, 0 failed)" in capsys.readouterr().out
    assert json.loads((tmp / "metrics.json").read_text())["passages"] == len(rows)


def test_a_timeout_is_retried(project):
    tmp, rows, write_params = project
    with LoopbackLLM(3, lambda c, prompt: ("hang", 4) if c == 1 else None) as srv:
        generate.main(write_params(srv.base_url, concurrency=1, timeout_s=0.5))
        assert srv.requests == len(rows) + 1
        assert srv.answered == len(rows)


def test_failures_keep_the_answers_and_the_rerun_asks_only_for_the_rest(project):
    """Malformed JSON (and 500s past the retries) fail only those passages: the run ends in
    an error without outputs, and the next run requests only the failed passages."""
    tmp, rows, write_params = project
    bad = {rows[2]["text"], rows[5]["text"]}

    def behaviour(count, prompt):
        if rows[2]["text"] in prompt:
            return ("malformed",)
        if rows[5]["text"] in prompt:
            return ("status", 500)
        return None

    with LoopbackLLM(3, behaviour) as srv:
        argv = write_params(srv.base_url, max_retries=1)
        with pytest.raises(StageError, match="2 of 8 passages got no answer"):
            generate.main(argv)
        assert not (tmp / "out" / "pairs.jsonl").exists() and not (tmp / "metrics.json").exists()
        assert srv.requests == 6 + 1 + 2  # six answered, one malformed, one 500 retried once
        srv.behaviour = None
        before = len(srv.prompts)
        generate.main(argv)
        again = srv.prompts[before:]
    assert len(again) == 2 and all(any(t in prompt for t in bad) for prompt in again)


def test_malformed_or_refused_answers_are_counted_and_not_asked_again(project):
    tmp, rows, write_params = project

    def behaviour(count, prompt):
        if rows[0]["text"] in prompt:
            return ("content", "\u0120\u0121 ))( gibberish")
        return None

    with LoopbackLLM(3, behaviour) as srv:
        argv = write_params(srv.base_url)
        generate.main(argv)
        generate.main(argv)
        assert srv.requests == len(rows)
    metrics = json.loads((tmp / "metrics.json").read_text())
    assert metrics["answers_malformed"] == 1
    assert metrics["questions_generated"] == 3 * (len(rows) - 1)


def test_an_authentication_error_stops_at_once(project):
    tmp, rows, write_params = project
    with LoopbackLLM(3, lambda c, prompt: ("status", 401)) as srv:
        with pytest.raises(StageError, match="HTTP 401"):
            generate.main(write_params(srv.base_url, concurrency=1))
        assert srv.requests == 1


def test_an_unwritable_cache_stops_the_run_instead_of_hanging(project):
    tmp, rows, write_params = project
    with LoopbackLLM(3) as srv:
        argv = write_params(srv.base_url, concurrency=2)
        (tmp / "cache").write_text("a file where the cache folder should be")
        with pytest.raises(StageError, match="cannot write the cache"):
            generate.main(argv)
    assert not (tmp / "out" / "pairs.jsonl").exists()


def test_the_model_filters_run_in_the_stage_with_the_base_model(project):
    tmp, rows, write_params = project
    roundtrip = {"retriever": "model", "top_k": 1, "min_score": -1.0}
    with LoopbackLLM(3) as srv:
        generate.main(write_params(srv.base_url, dedup_threshold=0.999, roundtrip=roundtrip))
    metrics = json.loads((tmp / "metrics.json").read_text())
    dropped = sum(v for k, v in metrics.items() if k.startswith("dropped_"))
    assert metrics["questions_generated"] == 3 * len(rows)
    assert dropped + metrics["pairs"] == metrics["questions_generated"] and metrics["pairs"] > 0


def test_an_interrupted_run_resumes_without_repeating_requests(project):
    """SIGTERM to the stage process once three answers are cached: it exits 130 with no
    output; the next run requests exactly the passages that were not answered."""
    tmp, rows, write_params = project
    answered = 3
    with LoopbackLLM(3, lambda c, prompt: ("hold",) if c > answered else None) as srv:
        argv = write_params(srv.base_url, concurrency=2)
        proc = subprocess.Popen(
            [sys.executable, "-m", "stages.generate", *argv],
            cwd=ROOT,
            env={**env(), KEY_ENV: SECRET},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 120
        while srv.answered < answered or len(list((tmp / "cache").rglob("*.json"))) < answered:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 130, out
        assert "interrupted" in out
        assert not (tmp / "out" / "pairs.jsonl").exists() and not (tmp / "metrics.json").exists()
        first = srv.prompts[:answered]
        srv.behaviour = None
        srv.release()
        before = len(srv.prompts)
        generate.main(argv)
        again = srv.prompts[before:]
    assert len(again) == len(rows) - answered
    assert not set(first) & set(again)
