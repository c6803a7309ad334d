"""Field validators for configuration and plugin parameter classes.

Use them on attrs fields (``attrs.field(validator=non_negative_int)``). A failing validator raises
:class:`FieldError`, which carries the field name so the configuration loader can report the full
TOML path (``experiments.v2.guards[0].params.min_bars: expected a non-negative integer, got -1``).
Plugin authors should use these for their own ``params`` classes so their errors read the same way.

Every ``float`` field refuses ``nan``, ``inf`` and ``-inf`` (which TOML accepts) without a
validator; annotate a field :data:`AnyFloat` where a non-finite value means something (``inf``
for "no limit"). A field whose default is non-finite (``limit: float = math.inf``) accepts them
as well.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Annotated, Any


class FieldError(ValueError):
    """A field value failed validation; ``field`` is the attribute name, ``message`` the reason."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


Validator = Callable[[Any, Any, Any], None]


class _NonFiniteAllowed:
    """The marker of :data:`AnyFloat`, which the configuration converter looks for."""

    def __repr__(self) -> str:
        return "non-finite allowed"


NON_FINITE_ALLOWED = _NonFiniteAllowed()

#: A float parameter that may be ``nan``, ``inf`` or ``-inf``: ``limit: AnyFloat = math.inf``
#: (also inside ``list[AnyFloat]`` or ``AnyFloat | None``). A plain ``float`` refuses them.
AnyFloat = Annotated[float, NON_FINITE_ALLOWED]



def _check(predicate: Callable[[Any], bool], expected: str) -> Validator:
    def validate(_instance: Any, attribute: Any, value: Any) -> None:
        if not predicate(value):
            raise FieldError(attribute.name, f"expected {expected}, got {value!r}")

    validate.__doc__ = f"Require {expected}."
    return validate


def _is_finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


non_negative_int = _check(lambda v: isinstance(v, int) and v >= 0, "a non-negative integer")
positive_int = _check(lambda v: isinstance(v, int) and v > 0, "a positive integer")
#: the largest seed: the registry stores seeds as SQLite's signed 64-bit integers
MAX_SEED = 2**63 - 1
seed_int = _check(lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED,
                  "an integer in [0, 2**63 - 1]")
finite = _check(_is_finite, "a finite number")
non_negative = _check(lambda v: _is_finite(v) and v >= 0, "a finite number >= 0")
positive = _check(lambda v: _is_finite(v) and v > 0, "a finite number > 0")
open_unit_interval = _check(lambda v: _is_finite(v) and 0 < v < 1, "a number strictly between 0 and 1")
unit_interval = _check(lambda v: _is_finite(v) and 0 <= v <= 1, "a number between 0 and 1")
non_empty_str = _check(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")


def matching(pattern: str, what: str) -> Validator:
    """Require a string matching the regular expression ``pattern`` in full (``what`` says what
    is expected, for the message)."""
    compiled = re.compile(pattern)
    return _check(lambda v: isinstance(v, str) and compiled.fullmatch(v) is not None, what)


def optional(validator: Validator) -> Validator:
    """Accept ``None``, otherwise apply ``validator``."""

    def validate(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return validate


def one_of(choices: Iterable[str]) -> Validator:
    """Require the value to be one of ``choices``."""
    allowed = tuple(choices)
    return _check(lambda v: v in allowed, "one of " + ", ".join(repr(c) for c in allowed))


def int_in_range(low: int, high: int) -> Validator:
    """Require an integer with ``low <= value <= high``."""
    return _check(lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high,
                  f"an integer from {low:,} to {high:,}")


def at_least(bound: float) -> Validator:
    """Require a finite number >= ``bound``."""
    return _check(lambda v: _is_finite(v) and v >= bound, f"a finite number >= {bound}")


def positive_int_list(_instance: Any, attribute: Any, value: Any) -> None:
    """Require a non-empty list of positive integers (layer sizes, windows)."""
    if not value or not all(isinstance(v, int) and v > 0 for v in value):
        raise FieldError(attribute.name, f"expected a non-empty list of positive integers, got {list(value)!r}")
