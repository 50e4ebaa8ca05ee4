"""params.yaml written from the config models: a profile's overrides merged onto the
defaults, every key with its description as a comment, and the rows of the params reference.
``python -m embedtune.config --profile profiles/<name>.yaml`` runs ``main``."""

from __future__ import annotations

import argparse
import json
import logging
import re
import textwrap
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from embedtune import io
from embedtune.config.params import Params, in_file, load_yaml, merge
from embedtune.errors import StageError

log = logging.getLogger(__name__)

_WIDTH, _WRAP, _COLUMN = 110, 96, 30  # lines stay readable; inline comments line up


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@:+~-]*")


def _float(x: float) -> str:
    """Shortest text that reads back as exactly ``x``: PyYAML (YAML 1.1) wants a dot and a
    signed exponent (``2e-5`` would be a string), tiny values read best in e-notation."""
    text = repr(x)
    if x != 0 and abs(x) < 1e-3:
        text = next(t for n in range(17) if float(t := f"{x:.{n}e}") == x)
    mantissa, e, exp = text.partition("e")
    return (mantissa if "." in mantissa else mantissa + ".0") + (f"e{int(exp):+d}" if e else "")


def _scalar(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if v is None or isinstance(v, bool | int):
        return json.dumps(v)  # null, true, false, 42
    if isinstance(v, float):
        return _float(v)
    # Plain only when both YAML versions (PyYAML here, ruamel in DVC) must read it as text.
    plain = _PLAIN.fullmatch(v) and yaml.safe_load(f"k: {v}") == {"k": v}
    return v if plain else json.dumps(v, ensure_ascii=False)


def _commented(text: str, description: str, indent: str) -> list[str]:
    line = f"{text:<{_COLUMN}} # {description}"
    if len(line) <= _WIDTH:
        return [line]
    return [*_block(description, indent), text]


def _block(description: str, indent: str) -> list[str]:
    lines = textwrap.wrap(description, _WRAP - len(indent), break_long_words=False)
    return [f"{indent}# {c}" for c in lines]


def _lines(model: BaseModel, indent: str) -> list[str]:
    out = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        nested = isinstance(value, BaseModel)
        text = f"{indent}{name}:" + ("" if nested else " " + _scalar(value))
        out += _commented(text, field.description or "", indent)
        out += _lines(value, indent + "  ") if nested else []
    return out


def render(conf: Params, profile: str | None = None) -> str:
    """The full params.yaml of ``conf``: every section and key in field order, each with its
    description as a comment. ``load`` reads it back to ``conf``, floats exactly."""
    source = f"from {profile}" if profile else "from a profile"
    out = _block(
        f"Written {source} by `make profile PROFILE=<name>`: edit the profile, not this file. "
        "Every key with its meaning; defaults and rules: embedtune/config/.",
        "",
    )
    for name, field in Params.model_fields.items():
        out += ["", *_block(field.description or "", ""), f"{name}:"]
        out += _lines(getattr(conf, name), "  ")
    return "\n".join(out) + "\n"


_OPS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "length >="}


def _kind(tp: Any, meta: list) -> tuple[str, list[str]]:
    """Type name and allowed values/constraints of an annotation, Annotated parts included."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _kind(args[0], meta + [m for a in args[1:] for m in getattr(a, "metadata", [a])])
    rules = [f"{sym} {getattr(m, op)}" for m in meta for op, sym in _OPS.items() if hasattr(m, op)]
    if origin is Literal:
        return "str", [", ".join(args), *rules]
    if origin in (Union, UnionType, list):
        kinds = [_kind(a, meta if origin is not list else []) for a in args]
        name = " | ".join(k for k, _ in kinds)
        inner = list(dict.fromkeys(r for _, rs in kinds for r in rs))
        if origin is list:
            return f"list[{name}]", [f"each {r}" if r[0] in "<>" else r for r in inner] + rules
        return name, inner
    return ("null" if tp is NoneType else tp.__name__), rules


def reference_rows() -> list[dict[str, str]]:
    """One row per section and key, in field order, for a params reference page: key, type,
    default, allowed (values or constraints; rules across keys are in the descriptions) and
    description. Defaults are written as in params.yaml."""
    rows: list[dict[str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            row = {"key": prefix + name, "description": field.description or ""}
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                rows.append({**row, "type": "section", "default": "", "allowed": ""})
                walk(field.annotation, prefix + name + ".")
                continue
            kind, allowed = _kind(field.annotation, list(field.metadata))
            default = _scalar(field.default)
            rows.append({**row, "type": kind, "default": default, "allowed": "; ".join(allowed)})

    walk(Params, "")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Write the full params file of a profile (``make profile PROFILE=<name>``)."""
    ap = argparse.ArgumentParser(description="Write params.yaml from a profile's overrides.")
    ap.add_argument("--profile", required=True, help="overrides, e.g. profiles/fixed-gpu.yaml")
    ap.add_argument("--out", default="params.yaml")
    args = ap.parse_args(argv)
    overrides = load_yaml(args.profile)
    try:
        conf = merge(overrides)
    except StageError as exc:
        raise in_file(args.profile, exc) from exc
    with io.atomic_path(args.out) as tmp:
        tmp.write_text(render(conf, profile=args.profile), encoding="utf-8")
    log.info("%s: written from %s", args.out, args.profile)
