"""dvc.yaml lists, for every stage, every project file the stage's code imports.

A stage whose deps miss a module it imports stays "up to date" after that module changes:
the lock check is green and a pull request shows metrics the branch's code did not make.
The imports are read from the source (function-level imports included) rather than from
a running interpreter, so nothing heavy is imported here.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from tests.pipeline import ROOT, run

PACKAGES = ("embedtune", "stages")  # the project's own top-level import names


def module_file(name: str, root: Path) -> Path | None:
    """The file a dotted project module name resolves to under ``root``, if any."""
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    """Dotted names of the project modules a file imports (``from pkg import mod`` counts
    ``pkg.mod`` when that is a module, else ``pkg``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def project_imports(module: str, root: Path) -> set[Path]:
    """Every project file that running ``python -m <module>`` can execute: the module, what
    it imports (transitively) and the package ``__init__`` files on the way, relative to
    ``root``."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
            path = module_file(".".join(parts[:i]), root)
            if path is None or path in seen:
                continue
            seen.add(path)
            todo.extend(_imported_names(path))
    return {p.relative_to(root) for p in seen}


def stage_modules(dvc_yaml: dict) -> dict[str, str]:
    """Stage name -> the module its command runs with ``python -m``."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        found = re.findall(r"python\s+-m\s+([\w.]+)", stage["cmd"])
        assert found, f"stage {name}: command does not run a project module: {stage['cmd']}"
        out[name] = found[0]
    return out


def uncovered(deps: list[str], files: set[Path]) -> set[Path]:
    """Files not listed in ``deps``, either themselves or through a folder above them."""
    listed = [Path(d) for d in deps if "${" not in d]
    return {f for f in files if not any(f == d or d in f.parents for d in listed)}


def missing_deps(dvc_yaml: dict, root: Path) -> dict[str, set[Path]]:
    """Stage name -> imported project files its deps do not cover (empty when sound)."""
    out = {}
    for name, module in stage_modules(dvc_yaml).items():
        miss = uncovered(dvc_yaml["stages"][name]["deps"], project_imports(module, root))
        if miss:
            out[name] = miss
    return out


def _dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_every_stage_depends_on_every_project_file_it_imports():
    dvc_yaml = _dvc_yaml()
    assert missing_deps(dvc_yaml, ROOT) == {}
    # The walk really reached the shared code (compare imports stats through its own code).
    assert Path("embedtune/reporting/stats.py") in project_imports("stages.compare", ROOT)
    assert Path("embedtune/config/params.py") in project_imports("stages.split", ROOT)


def unneeded_deps(dvc_yaml: dict, root: Path) -> dict[str, set[str]]:
    """Stage name -> the embedtune/ deps that cover no file the stage imports: a dep that
    only reruns the stage for edits that cannot change what it computes."""
    out = {}
    for name, module in stage_modules(dvc_yaml).items():
        files = project_imports(module, root)
        shared = [d for d in dvc_yaml["stages"][name]["deps"] if d.startswith("embedtune")]
        extra = {d for d in shared if uncovered([d], files) == files}
        if extra:
            out[name] = extra
    return out


def test_no_stage_depends_on_shared_code_it_does_not_import():
    dvc_yaml = _dvc_yaml()
    assert unneeded_deps(dvc_yaml, ROOT) == {}
    # Only the optional document stages reach the LLM client; train does not.
    assert Path("embedtune/documents/llm_client.py") not in project_imports("stages.train", ROOT)
    dvc_yaml["stages"]["train"]["deps"].append("embedtune/documents")
    assert unneeded_deps(dvc_yaml, ROOT) == {"train": {"embedtune/documents"}}


def _changed_deps(status: dict) -> dict[str, list[str]]:
    """Stage name -> the deps `dvc status --json` reports changed."""
    return {
        stage: sorted(
            path for e in entries if isinstance(e, dict) for path in e.get("changed deps", {})
        )
        for stage, entries in status.items()
    }


def _status_after_edit(project: Path, rel: str) -> dict[str, list[str]]:
    """`dvc status` after appending a comment to ``rel``; the file is put back after."""
    path = project / rel
    try:
        path.write_text(path.read_text() + "\n# an edit\n")
        return _changed_deps(json.loads(run(["dvc", "status", "--json"], project).stdout or "{}"))
    finally:
        run(["git", "checkout", "-q", "--", rel], project)


@pytest.mark.slow
def test_an_edit_reruns_exactly_the_stages_that_import_it(reproduced):
    """End to end on a reproduced project: an edit inside documents/ (used only by the
    optional chunk and generate stages) leaves every stage up to date; one inside retrieval/
    makes the stages that search stale and leaves the others alone."""
    project = reproduced[0]
    assert json.loads(run(["dvc", "status", "--json"], project).stdout or "{}") == {}
    assert _status_after_edit(project, "embedtune/documents/llm_client.py") == {}
    stale = _status_after_edit(project, "embedtune/retrieval/fusion.py")
    assert {"baseline", "evaluate"} <= set(stale), stale
    assert not {"fetch", "split", "build_ir_eval", "compare"} & set(stale), stale
    assert stale["baseline"] == ["embedtune/retrieval"], stale
    stale = _status_after_edit(project, "embedtune/reporting/stats.py")
    assert stale == {"compare": ["embedtune/reporting"]}, stale
    # Restored: the project is up to date again, so each edit alone made the difference.
    assert json.loads(run(["dvc", "status", "--json"], project).stdout or "{}") == {}
