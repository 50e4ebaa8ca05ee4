"""The building blocks every config section uses: the strict frozen base model, a field
with its default and description, and cross-field rules that name their key."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

Pos = Annotated[int, Field(ge=1)]
Share = Annotated[float, Field(ge=0, lt=1)]


def field(default: Any, description: str, **constraints: Any) -> Any:
    """A field: its default (the default profile's value), its meaning, its constraints."""
    return Field(default, description=description, **constraints)


def rule(ok: Any, key: str, message: str) -> None:
    """A rule across fields; ``key`` is relative to the model whose validator checks it."""
    if not ok:
        raise PydanticCustomError("params_rule", message, {"key": key})


class Section(BaseModel):
    # strict: a quoted "32" or `true` where a number is wanted is a typo, not a value (ints
    # still pass as floats); frozen: a stage cannot drift from what dvc.lock recorded.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)
