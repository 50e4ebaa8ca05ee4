"""The answer cache of the generate stage: one JSON file per answered passage, keyed by
everything that shapes the answer, written atomically the moment it arrives.

Apart from embedtune.documents.llm_client so the cache's contract (keys, atomic writes, damaged
entries asked again) reads and tests on its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

CACHE_ENV = "EMBEDTUNE_GENERATE_CACHE"  # a shared folder for a team or a CI runner


def cache_key(model: str, prompt: str, temperature: float, max_tokens: int) -> str:
    blob = json.dumps([model, prompt, temperature, max_tokens], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Cache:
    """One JSON file per answered passage under ``folder``."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # a damaged entry is asked again, never trusted

    def put(self, key: str, entry: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary per write: worker threads write concurrently, and a run killed
        # mid-write leaves only a stray temporary, never a half entry under the final name.
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        tmp.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
