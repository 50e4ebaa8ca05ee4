"""The prompt sent for one passage and the questions read back from the model's answer.

Apart from embedtune.documents.llm_client (requests, retries, concurrency) because these are pure
text functions, tested without a server.
"""

from __future__ import annotations

import json
import re

from embedtune.errors import StageError


def render(template: str, passage: str, n: int) -> str:
    """The prompt for one passage. Plain replacement, so braces in passages are harmless."""
    return template.replace("{n}", str(n)).replace("{passage}", passage)


def check_template(template: str, path: str) -> None:
    if "{passage}" not in template:
        raise StageError(f"{path}: the prompt template has no {{passage}} placeholder")


_NUMBERED = re.compile(r"^\s*(?:\d+\s*[.):\]-]|[-*•]|q\d+\s*[:.)])\s*(.+)$", re.IGNORECASE)


def parse_questions(content: str | None, n: int) -> list[str] | None:
    """Questions from a model answer: a JSON list of strings (bare, fenced or under a
    "questions" key), numbered or bulleted lines, or plain lines ending with '?'. None
    when nothing usable is there (counted as malformed)."""
    if not content or not content.strip():
        return None
    text = content.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    bracket = re.search(r"(\[.*\]|\{.*\})", text, re.DOTALL)
    if bracket:
        candidates.append(bracket.group(1))
    for blob in candidates:
        try:
            data = json.loads(blob)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            data = data.get("questions")
        if isinstance(data, list) and data and all(isinstance(q, str) for q in data):
            return [q.strip() for q in data][:n]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    numbered = [m.group(1).strip() for line in lines if (m := _NUMBERED.match(line))]
    found = numbered or [line for line in lines if line.endswith("?")]
    return found[:n] or None
