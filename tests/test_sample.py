"""The bundled legal sample: the quality rules of its data card, checked on the shipped file."""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections import defaultdict

import pandas as pd
import pytest

from tests.pipeline import ROOT

SAMPLE = ROOT / "sample" / "legal_sample.csv.gz"
KB = ROOT / "sample" / "legal_kb.csv.gz"
# The reference dataset's columns, spelled out here rather than imported from
# sample/build.py, so the test holds the build to them.
COLUMNS = [
    "question",
    "text",
    "chunk_id",
    "case_name",
    "date_filed",
    "court",
    "question_id",
    "answer_location",
    "global_chunk_id",
]


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)


def test_columns_match_the_reference_dataset(sample):
    assert list(sample.columns) == COLUMNS


def test_size(sample):
    assert len(sample) >= 1200
    assert sample["global_chunk_id"].nunique() >= 250
    assert sample["case_name"].nunique() >= 10


def test_no_duplicated_question(sample):
    lowered = sample["question"].str.strip().str.lower()
    dupes = sorted(lowered[lowered.duplicated()])
    assert not dupes, dupes[:5]


def test_every_chunk_has_three_to_six_questions(sample):
    counts = sample.groupby("global_chunk_id").size()
    assert counts.min() >= 3, counts[counts < 3]
    assert counts.max() <= 6, counts[counts > 6]


def test_each_chunk_id_maps_to_one_text_and_one_case(sample):
    texts: dict[str, set[str]] = defaultdict(set)
    cases: dict[str, set[str]] = defaultdict(set)
    for row in sample.itertuples():
        texts[row.global_chunk_id].add(row.text)
        cases[row.global_chunk_id].add(row.case_name)
    assert all(len(t) == 1 for t in texts.values())
    assert all(len(c) == 1 for c in cases.values())
    # ...and no two chunk ids share a text (that would make two "different" answers identical).
    assert len({next(iter(t)) for t in texts.values()}) == len(texts)


def test_chunks_are_passage_sized(sample):
    words = sample.drop_duplicates("global_chunk_id")["text"].str.split().str.len()
    assert words.min() >= 120 and words.max() <= 250, (words.min(), words.max())


def test_shipped_files_are_the_build_of_the_case_files(tmp_path):
    """Both .csv.gz files in git must be exactly what sample/build.py makes of
    sample/cases/ and sample/kb/."""
    out, kb_out = tmp_path / "rebuilt.csv.gz", tmp_path / "kb.csv.gz"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "sample" / "build.py"),
            "--out",
            str(out),
            "--kb-out",
            str(kb_out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for built, shipped in ((out, SAMPLE), (kb_out, KB)):
        assert gzip.decompress(built.read_bytes()) == gzip.decompress(shipped.read_bytes())
        assert built.read_bytes() == shipped.read_bytes()


@pytest.fixture(scope="module")
def kb() -> pd.DataFrame:
    return pd.read_csv(KB, dtype=str, keep_default_na=False)


def test_the_knowledge_base_holds_every_labelled_passage_under_its_id(sample, kb):
    labelled = sample.drop_duplicates("global_chunk_id").set_index("global_chunk_id")
    by_id = kb.set_index("global_chunk_id")
    assert by_id.index.is_unique and kb["text"].is_unique
    assert set(labelled.index) <= set(by_id.index)
    assert (by_id.loc[labelled.index, "text"] == labelled["text"]).all()
    assert (by_id.loc[labelled.index, "case_name"] == labelled["case_name"]).all()


def test_the_knowledge_base_is_at_least_twice_the_labelled_passages(sample, kb):
    labelled = sample["global_chunk_id"].nunique()
    assert len(kb) >= 2 * labelled, (len(kb), labelled)
    unlabelled = kb[~kb["global_chunk_id"].isin(set(sample["global_chunk_id"]))]
    assert unlabelled["case_name"].nunique() >= 10
    assert not set(unlabelled["case_name"]) & set(sample["case_name"])  # opinions of their own
    words = unlabelled["text"].str.split().str.len()
    assert words.min() >= 120 and words.max() <= 250, (words.min(), words.max())


def test_a_knowledge_base_passage_with_questions_is_rejected(tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    text = " ".join(["word"] * 130)
    (folder / "x.json").write_text(
        '{"case_name": "X v. Y", "court": "C", "date_filed": "2025-01-01", "chunks": '
        f'[{{"section": "Intro", "text": "{text}", "questions": []}}]}}'
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sample" / "build.py"), "--check", str(folder / "x.json")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "carries no 'questions'" in proc.stderr, proc.stderr


def test_build_rejects_a_bad_case_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"case_name": "X v. Y", "court": "C", "date_filed": "2025-01-01", "chunks": '
        '[{"section": "Intro", "text": "too short", "questions": [{"question": "Why", '
        '"answer_location": "nowhere"}]}]}'
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sample" / "build.py"), "--check", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    for problem in ("2 words", "1 questions", "ending in '?'", "answer_location"):
        assert problem in proc.stderr, (problem, proc.stderr)
