"""OpenAI-compatible servers on 127.0.0.1 for the generate and llm_client tests: nothing
leaves the machine.

- ``LoopbackLLM``: a few lines of http.server that answer /v1/chat/completions with
  questions made of the passage's own words, and can be told to answer 429, hang, send
  malformed JSON or hold requests; it counts requests and the most ever in flight.
- ``transformers_server``: the real ``transformers serve`` on a tiny Llama built here from a
  config and a locally trained byte-level BPE tokenizer (its answers are gibberish).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PASSAGE = re.compile(r'"""\n(.*)\n"""', re.DOTALL)


def questions_for(passage: str, n: int) -> list[str]:
    """Deterministic questions that share the passage's rarest-looking (longest) words, so
    the BM25 round-trip keeps them."""
    words = sorted({w for w in re.findall(r"[A-Za-z]{4,}", passage)}, key=lambda w: (-len(w), w))
    out = []
    for i in range(n):
        picked = words[i : i + 3] or ["nothing"]
        out.append(f"What about {' '.join(picked)} ({i})?")
    return out


class LoopbackLLM:
    """A scripted chat-completions endpoint. ``behaviour(count, prompt)`` may return None
    (answer normally) or one of: ("status", code), ("hang", seconds), ("malformed",),
    ("content", text), ("hold",) (wait until ``release()``)."""

    def __init__(self, n_questions: int = 3, behaviour=None):
        self.n = n_questions
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.requests = 0
        self.answered = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.prompts: list[str] = []
        self.auth: list[str] = []
        self.released = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with owner.lock:
                    owner.requests += 1
                    count = owner.requests
                    owner.prompts.append(prompt)
                    owner.auth.append(self.headers.get("Authorization", ""))
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    owner._respond(self, body, count, prompt)
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> LoopbackLLM:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.released.set()

    def _send(self, handler, code: int, payload: bytes, headers: dict | None = None) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(payload)

    def _respond(self, handler, body: dict, count: int, prompt: str) -> None:
        action = self.behaviour(count, prompt) if self.behaviour else None
        content = None
        if action is not None:
            kind = action[0]
            if kind == "status":
                err = json.dumps({"error": {"message": f"scripted {action[1]}"}}).encode()
                return self._send(handler, action[1], err, {"Retry-After": "0"})
            if kind == "hang":
                time.sleep(action[1])
            elif kind == "hold":
                self.released.wait(60)
            elif kind == "malformed":
                return self._send(handler, 200, b'{"id": "x", "choices": [ {"mess')
            elif kind == "content":
                content = action[1]
        if content is None:
            match = PASSAGE.search(prompt)
            content = json.dumps(questions_for(match.group(1) if match else prompt, self.n))
        answer = {
            "id": f"cmpl-{count}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 20},
        }
        try:
            self._send(handler, 200, json.dumps(answer).encode())
        except (BrokenPipeError, ConnectionResetError):
            return  # the client gave up (a timeout): nothing was answered
        with self.lock:
            self.answered += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_tiny_llama(folder: Path) -> Path:
    """A 2-layer, 32-wide Llama with a byte-level BPE tokenizer (vocab ~300) trained here and
    a chat template: enough for `transformers serve` to answer chat completions."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(["1. What does the court hold about the contract?"] * 20, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


class TransformersServer:
    """`transformers serve <model>` on a free loopback port; ``requests()`` counts the chat
    completions it logged (server-side)."""

    def __init__(self, model_dir: Path, home: Path):
        self.model = str(model_dir)
        self.port = free_port()
        self.log = home / "serve.log"
        (home / "hf" / "hub").mkdir(parents=True, exist_ok=True)  # else /v1/models fails
        env = dict(os.environ, HF_HOME=str(home / "hf"), HF_HUB_OFFLINE="1")
        env.update(HF_HUB_DISABLE_UPDATE_CHECK="1", TRANSFORMERS_OFFLINE="1")
        cli = Path(sys.executable).parent / "transformers"
        self.proc = subprocess.Popen(
            [str(cli), "serve", self.model, "--host", "127.0.0.1", "--port", str(self.port)]
            + ["--device", "cpu"],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=env,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait(self, limit_s: float = 180) -> None:
        """Until /health answers (bounded; the process dying ends the wait at once)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"transformers serve did not answer:\n{self.log.read_text()}")

    def requests(self) -> int:
        return self.log.read_text().count('"POST /v1/chat/completions')

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
