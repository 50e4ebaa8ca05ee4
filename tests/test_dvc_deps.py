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
    assert Path("embedtune/stats.py") in project_imports("stages.compare", ROOT)
    assert Path("embedtune/params.py") in project_imports("stages.split", ROOT)


def test_a_stage_missing_a_shared_module_is_reported():
    dvc_yaml = _dvc_yaml()
    deps = dvc_yaml["stages"]["compare"]["deps"]
    deps[:] = [d for d in deps if d != "embedtune"] + ["embedtune/params.py"]
    miss = missing_deps(dvc_yaml, ROOT)
    assert set(miss) == {"compare"}
    assert Path("embedtune/stats.py") in miss["compare"]
    assert Path("embedtune/params.py") not in miss["compare"]


def test_function_level_and_transitive_imports_are_found(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "embedtune").mkdir()
    (tmp_path / "embedtune" / "__init__.py").write_text("")
    (tmp_path / "embedtune" / "a.py").write_text("from embedtune.b import thing\n")
    (tmp_path / "embedtune" / "b.py").write_text("thing = 1\n")
    (tmp_path / "embedtune" / "unused.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("def main():\n    from embedtune import a\n")
    assert project_imports("stages.s", tmp_path) == {
        Path("stages/s.py"),
        Path("embedtune/__init__.py"),
        Path("embedtune/a.py"),
        Path("embedtune/b.py"),
    }


@pytest.mark.slow
def test_editing_shared_code_marks_compare_changed(reproduced):
    """End to end: after an edit to embedtune/stats.py, `dvc status` says compare changed."""
    project = reproduced[0]
    assert json.loads(run(["dvc", "status", "--json"], project).stdout or "{}") == {}
    stats = project / "embedtune" / "stats.py"
    try:
        stats.write_text(stats.read_text() + "\n# an edit to the significance test\n")
        status = json.loads(run(["dvc", "status", "--json"], project).stdout or "{}")
    finally:
        run(["git", "checkout", "-q", "--", "embedtune/stats.py"], project)
    changed = [
        path
        for entry in status.get("compare", [])
        if isinstance(entry, dict)
        for path in entry.get("changed deps", {})
    ]
    assert changed == ["embedtune"], status
    # Restored: the project is up to date again, so the edit alone made the difference.
    assert json.loads(run(["dvc", "status", "--json"], project).stdout or "{}") == {}
