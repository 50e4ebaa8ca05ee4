"""question_prompt: the prompt rendered for a passage and the questions parsed from answers."""

from __future__ import annotations

import pytest

from embedtune.documents import question_prompt
from embedtune.errors import StageError


@pytest.mark.parametrize(
    "content, expected",
    [
        ('["What is A?", "Who is B?"]', ["What is A?", "Who is B?"]),
        ('Sure:\n```json\n["a?", "b?", "c?", "d?"]\n```', ["a?", "b?", "c?"]),
        ('{"questions": ["x?"]}', ["x?"]),
        ("1. First one?\n2) Second one?\n3: third", ["First one?", "Second one?", "third"]),
        ("- bullet a\n* bullet b", ["bullet a", "bullet b"]),
        ("Here you go\nIs it plain?\nAnother?", ["Is it plain?", "Another?"]),
        ("\u0120\u0121 gibberish ))( without a question", None),
        ("", None),
        (None, None),
        ('["unterminated', None),
    ],
)
def test_parse_questions(content, expected):
    assert question_prompt.parse_questions(content, 3) == expected


def test_render_keeps_braces_in_passages():
    out = question_prompt.render("Write {n} for:\n{passage}", "a {b} {n} c", 2)
    assert out == "Write 2 for:\na {b} {n} c"
    with pytest.raises(StageError, match="passage"):
        question_prompt.check_template("no placeholder", "prompts/x.txt")
