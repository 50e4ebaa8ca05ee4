"""Questions for passages from an OpenAI-compatible chat endpoint, paid for once.

Each passage's answer is cached in its own file (``answer_cache``), keyed by everything that
shapes the answer (model, rendered prompt = template + passage + N, temperature,
max_tokens), the moment it arrives. The cache lives outside DVC's outputs (DVC deletes those
before a rerun), so an interrupted run, or a rerun after documents were added, requests
only the passages not yet answered. The API key is read from the environment only and never
written anywhere.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass, field

from embedtune.documents.answer_cache import Cache, cache_key
from embedtune.documents.question_prompt import parse_questions
from embedtune.errors import StageError

NO_KEY = "no-key"  # sent when api_key_env is null: local servers ignore it
# Answers that are final: a rerun would be refused the same way, so they stop the run.
FATAL_STATUS = (401, 403, 404)


def api_key(env_name: str | None) -> str:
    """The key from the variable named in params; a clear error, before any request, when
    that variable is unset or empty."""
    if env_name is None:
        return NO_KEY
    key = os.environ.get(env_name, "").strip()
    if not key:
        raise StageError(
            f"environment variable {env_name} (params key 'generate.api_key_env') is not set: "
            f"export {env_name}=<your key> before `dvc repro`, or set generate.api_key_env: "
            "null for a server that needs no key. No request was made."
        )
    return key


@dataclass
class RunCounts:
    """What this run asked for and got (printed; the metrics total the cache entries)."""

    passages: int = 0
    cached: int = 0
    requests: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_failure: str = ""
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Request:
    base_url: str
    model: str
    temperature: float
    max_tokens: int
    timeout_s: float
    max_retries: int
    concurrency: int


def make_client(req: Request, key: str):
    """The openai client: its own retries (connection errors, timeouts, 408/409/429/5xx)
    with exponential backoff that honours Retry-After."""
    import openai

    return openai.OpenAI(
        base_url=req.base_url, api_key=key, timeout=req.timeout_s, max_retries=req.max_retries
    )


def _ask(client, req: Request, prompt: str, n: int) -> tuple[dict, int]:
    """One passage's request: (cache entry, retries taken). Raises openai errors."""
    raw = client.chat.completions.with_raw_response.create(
        model=req.model,
        messages=[{"role": "user", "content": prompt}],
        temperature=req.temperature,
        max_tokens=req.max_tokens,
    )
    retries = getattr(raw, "retries_taken", 0) or 0
    try:
        completion = raw.parse()
        choice = completion.choices[0]
        message = choice.message
        content = message.content
        refusal = getattr(message, "refusal", None)
        finish = choice.finish_reason
        usage = completion.usage
    except Exception as exc:  # a body that is not a chat completion: the server's fault
        raise MalformedResponse(f"not a chat completion: {type(exc).__name__}: {exc}") from exc
    questions = None if refusal else parse_questions(content, n)
    if refusal or finish == "content_filter":
        status = "refused"
    elif questions is None:
        status = "malformed"
    else:
        status = "ok"
    entry = {
        "status": status,
        "questions": questions or [],
        "content": content,
        "finish_reason": finish,
        "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
        "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
    }
    return entry, retries


class MalformedResponse(Exception):
    """The HTTP body was not a chat completion (not the model's answer: not cached)."""


class _Fatal(Exception):
    pass


def ask_all(
    prompts: dict[str, str], n: int, req: Request, key: str, cache: Cache, progress: bool = True
) -> tuple[dict[str, dict], RunCounts]:
    """Cache entries for every passage id in ``prompts`` (id -> rendered prompt).

    Cached passages make no request. The rest go out on ``req.concurrency`` worker threads;
    each answer is cached as it arrives. A request that still fails after the client's
    retries is counted and left uncached (the next run asks again); the run then ends with
    an error once every other passage is answered, so no incomplete pairs reach DVC. An
    authentication, permission or unknown-model answer stops the run at once.
    """
    import openai
    from tqdm.auto import tqdm

    counts = RunCounts(passages=len(prompts))
    entries: dict[str, dict] = {}
    todo: list[tuple[str, str, str]] = []
    for pid, prompt in prompts.items():
        k = cache_key(req.model, prompt, req.temperature, req.max_tokens)
        hit = cache.get(k)
        if hit is not None:
            entries[pid] = hit
            counts.cached += 1
        else:
            todo.append((pid, k, prompt))
    if not todo:
        return entries, counts
    client = make_client(req, key)
    jobs: queue.Queue = queue.Queue()
    for job in todo:
        jobs.put(job)
    done: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                pid, k, prompt = jobs.get_nowait()
            except queue.Empty:
                return
            try:
                entry, retries = _ask(client, req, prompt, n)
            except openai.APIStatusError as exc:
                kind = "fatal" if exc.status_code in FATAL_STATUS else "failed"
                done.put((kind, pid, f"HTTP {exc.status_code}: {_short(exc)}", 0))
                continue
            except (openai.APIError, MalformedResponse) as exc:
                done.put(("failed", pid, f"{type(exc).__name__}: {_short(exc)}", 0))
                continue
            except Exception as exc:  # a bug or a full disk: report it, never hang the run
                done.put(("fatal", pid, f"{type(exc).__name__}: {_short(exc)}", 0))
                continue
            try:
                cache.put(k, entry)
            except OSError as exc:
                done.put(("fatal", pid, f"cannot write the cache {cache.folder}: {exc}", 0))
                continue
            done.put(("ok", pid, entry, retries))

    # Daemon threads: Ctrl-C or SIGTERM ends the process without waiting for requests in
    # flight; every answer that arrived is already in the cache.
    workers = [
        threading.Thread(target=work, daemon=True, name=f"generate-{i}")
        for i in range(min(req.concurrency, len(todo)))
    ]
    for w in workers:
        w.start()
    bar = tqdm(total=len(todo), desc="passages", disable=not progress)
    try:
        for _ in range(len(todo)):
            kind, pid, result, retries = done.get()
            bar.update(1)
            counts.requests += 1
            counts.retries += retries
            if kind == "ok":
                entries[pid] = result
                counts.prompt_tokens += result["prompt_tokens"]
                counts.completion_tokens += result["completion_tokens"]
                continue
            counts.failed += 1
            counts.failures.append(f"passage {pid}: {result}")
            if kind == "fatal":
                raise _Fatal(result)
    except _Fatal:
        stop.set()
        raise StageError(
            f"{req.base_url}: stopped at {counts.failures[-1]}; check generate.base_url, "
            "generate.model and the API key. Answers received so far are cached."
        ) from None
    finally:
        stop.set()
        bar.close()
    return entries, counts


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
