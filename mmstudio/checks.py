"""Checks of values a person typed (UI fields, CLI options), with the message they read.

A number field of the UI can hold nothing, a fraction, NaN or infinity: each is refused here with a
``UserError`` that names the field and what it accepts, instead of failing later inside ``int()``.
"""

from __future__ import annotations

import math
from typing import Any

from mmstudio.errors import UserError


def whole_number(value: Any, name: str, minimum: int | None = None,
                 maximum: int | None = None) -> int:
    """``value`` as an ``int``, or a ``UserError`` saying which whole numbers ``name`` takes."""
    if minimum is not None and maximum is not None:
        allowed = f"a whole number from {minimum} to {maximum}"
    elif minimum is not None:
        allowed = f"a whole number, at least {minimum}"
    elif maximum is not None:
        allowed = f"a whole number, at most {maximum}"
    else:
        allowed = "a whole number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be {allowed}, not {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise UserError(f"{name} must be {allowed}, not {value!r}")
    whole = int(number)
    if (minimum is not None and whole < minimum) or (maximum is not None and whole > maximum):
        raise UserError(f"{name} must be {allowed}, not {whole}")
    return whole


def finite_number(value: Any, name: str) -> float:
    """``value`` as a finite ``float``, or a ``UserError`` naming ``name``: nothing, text, a
    ``bool`` (``True`` is not a guidance of 1), NaN and infinity are refused."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise UserError(f"{name} must be a finite number, not {value}")
    return number
