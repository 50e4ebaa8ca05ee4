"""answer_cache: keys that change with what shapes an answer, atomic entries, damage re-asked."""

from __future__ import annotations

from embedtune.documents import answer_cache

ARGS = ("model-a", "prompt text", 0.7, 128)


def test_the_key_changes_with_every_field_and_only_with_them():
    key = answer_cache.cache_key(*ARGS)
    assert key == answer_cache.cache_key(*ARGS)
    for i, other in enumerate(("model-b", "prompt text!", 0.8, 129)):
        changed = list(ARGS)
        changed[i] = other
        assert answer_cache.cache_key(*changed) != key, f"field {i} does not reach the key"


def test_put_then_get_leaves_no_temporary(tmp_path):
    cache = answer_cache.Cache(tmp_path / "c")
    key = answer_cache.cache_key(*ARGS)
    assert cache.get(key) is None
    entry = {"status": "ok", "questions": ["Qu'est-ce que « A » ?"]}
    cache.put(key, entry)
    assert cache.get(key) == entry
    files = [path.name for path in (tmp_path / "c").rglob("*") if path.is_file()]
    assert files == [f"{key}.json"]


def test_a_damaged_entry_is_a_miss(tmp_path):
    cache = answer_cache.Cache(tmp_path)
    key = answer_cache.cache_key(*ARGS)
    cache.put(key, {"status": "ok"})
    path = next(tmp_path.rglob(f"{key}.json"))
    path.write_text('{"status": "o', encoding="utf-8")  # a copy cut short
    assert cache.get(key) is None
