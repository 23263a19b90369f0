"""Reading an interface stored as JSON in an ONNX model's metadata, checked field by field.

A model.onnx edited and rehashed by hand (or from another tool) must be refused in one
line naming the field, not fail in a reader later (inspect printed a traceback). Each
field of the interface dataclass has a kind:

    count   int >= 1             steps   int >= 0
    scale   finite float > 0     name    str
    names   list of str          shapes  {str: [int >= 1, ...]}
    sizes   {str: int >= 0}
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from snncompile.errors import CorruptInputError
from snncompile.ir.serialize import parse_json

T = TypeVar("T")


def _is_int(value: Any, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


# kind -> (check, what a valid value is)
_KINDS = {
    "count": (lambda v: _is_int(v, 1), "a positive integer"),
    "steps": (lambda v: _is_int(v, 0), "a non-negative integer"),
    "scale": (
        lambda v: (
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        ),
        "a positive finite number",
    ),
    "name": (lambda v: isinstance(v, str), "a string"),
    "names": (
        lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
        "a list of strings",
    ),
    "shapes": (
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(s, list) and all(_is_int(n, 1) for n in s) for s in v.values())
        ),
        "an object of shapes (lists of positive integers)",
    ),
    "sizes": (
        lambda v: isinstance(v, dict) and all(_is_int(n, 0) for n in v.values()),
        "an object of non-negative integers",
    ),
}


def interface_from_json(cls: type[T], text: str, kinds: dict[str, str]) -> T:
    """cls(**fields) from `text`; CorruptInputError (no path: the caller names the file)
    for invalid JSON, a missing or unknown field, or a value not of its kind."""
    what = f"{cls.__name__} metadata"
    try:
        data = parse_json(text)
    except json.JSONDecodeError as exc:
        raise CorruptInputError(f"{what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptInputError(f"{what} is not a JSON object")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise CorruptInputError(f"{what} has unknown fields {unknown}")
    for name, spec in known.items():
        required = spec.default is MISSING and spec.default_factory is MISSING
        if name not in data:
            if required:
                raise CorruptInputError(f"{what} lacks the field {name!r}")
            continue
        check, valid = _KINDS[kinds[name]]
        if not check(data[name]):
            shown = json.dumps(data[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise CorruptInputError(f"{what}: {name} {shown} is not {valid}")
    return cls(**data)
