"""The teacher's rules for grading a sheet: tolerance, the readings allowed, whether working is required,
and what each verdict is worth.

Set in a claims file's ``[rules]`` table or by ``npconv check``'s flags::

    [rules]
    tolerance = "exact"              # default; or "digits" (to the digits written), or "1%" (relative)
    readings = ["padding", "bias"]   # default; add "counting", or any misconception's name to accept it
    working = "optional"             # default; or "required": a number without its arithmetic is a slip
    slip_credit = 0.5                # what a slip is worth in the score (a claim that holds is worth 1)
    reading_credit = 1               # what a claim that holds only under an allowed reading is worth

Pure Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from npconv.errors import ConvArgumentError

#: Readings of the question itself: another padding, another bias convention (which parts of the
#: separable layer carry a bias), another counting convention (dense or effective).
QUESTION_READINGS = ("padding", "bias", "counting")

DEFAULT_READINGS = ("padding", "bias")

#: Evaluations of the question under candidate readings a claim may cost at most, by default.
DEFAULT_BUDGET = 2000

TOLERANCE_HELP = "'exact', 'digits' (to the digits written) or a relative tolerance such as '1%' or 0.01"


@dataclass(frozen=True)
class Rules:
    """How a sheet is graded.

    ``tolerance`` is ``"exact"`` (an integer count must be written exactly: ``1.92M`` is exact, ``2M``
    is rounded; a ratio, which has no exact decimal, holds to the digits written), ``"digits"`` (any
    value holds to the digits written) or a relative tolerance (a :class:`~fractions.Fraction`, 1% is
    ``Fraction(1, 100)``).  ``readings`` are the readings of the question accepted as right answers
    (:data:`QUESTION_READINGS`, or misconception names from
    :data:`npconv.claims.misconceptions.CATALOGUE` a teacher chooses to accept).  ``budget`` bounds the
    reading search per claim (candidate settings evaluated).
    """

    tolerance: str | Fraction = "exact"
    readings: tuple[str, ...] = DEFAULT_READINGS
    working_required: bool = False
    slip_credit: Fraction = Fraction(1, 2)
    reading_credit: Fraction = Fraction(1)
    budget: int = DEFAULT_BUDGET
    _allowed: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allowed", frozenset(self.readings))

    def allows(self, reading: str) -> bool:
        return reading in self._allowed

    def describe(self) -> str:
        """``exact values; readings allowed: padding, bias; working optional``."""
        if self.tolerance == "exact":
            tolerance = "exact values"
        elif self.tolerance == "digits":
            tolerance = "values to the digits written"
        else:
            tolerance = f"values within {float(self.tolerance) * 100:g}%"
        readings = ", ".join(self.readings) if self.readings else "none"
        working = "working required" if self.working_required else "working optional"
        return f"{tolerance}; readings allowed: {readings}; {working}"

    def to_json(self) -> dict[str, object]:
        tolerance = self.tolerance if isinstance(self.tolerance, str) else float(self.tolerance)
        return {"tolerance": tolerance, "readings": list(self.readings), "working_required": self.working_required,
                "slip_credit": float(self.slip_credit), "reading_credit": float(self.reading_credit),
                "budget": self.budget}


_PERCENT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")


def parse_tolerance(value: object, name: str) -> str | Fraction:
    """``"exact"``, ``"digits"``, ``"1%"``, ``"0.01"`` or ``0.01`` (a relative tolerance from 0 to 1)."""
    if isinstance(value, str) and value.strip().lower() in ("exact", "digits"):
        return value.strip().lower()
    try:
        if isinstance(value, str) and (match := _PERCENT.fullmatch(value)):
            relative = Fraction(match.group(1)) / 100
        elif isinstance(value, str):
            relative = Fraction(value.strip())
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            relative = Fraction(str(value))
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise ConvArgumentError(name, TOLERANCE_HELP, repr(value)) from None
    if not 0 <= relative < 1:
        raise ConvArgumentError(name, TOLERANCE_HELP + ", below 100%", repr(value))
    return "exact" if relative == 0 else relative


def parse_readings(value: object, name: str, known: Mapping[str, object]) -> tuple[str, ...]:
    """A list (or a comma-separated string) of reading names: :data:`QUESTION_READINGS` or ``known``
    (misconception names); ``"none"`` or an empty list allows none."""
    if isinstance(value, str):
        items = [] if value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise ConvArgumentError(name, "a list of reading names such as [\"padding\", \"bias\"]", repr(value))
    names = (*QUESTION_READINGS, *known)
    for item in items:
        if item.replace("-", "_") not in names:
            raise ConvArgumentError(name, f"reading names among {', '.join(names)}", repr(item))
    return tuple(dict.fromkeys(item.replace("-", "_") for item in items))


def parse_working(value: object, name: str) -> bool:
    """``"required"`` / ``"optional"`` (or true / false)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("required", "optional"):
        return value.strip().lower() == "required"
    raise ConvArgumentError(name, "'required' or 'optional'", repr(value))


def parse_credit(value: object, name: str) -> Fraction:
    """A credit from 0 to 1."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return Fraction(str(value))
    raise ConvArgumentError(name, "a number from 0 to 1", repr(value))


RULE_KEYS = ("tolerance", "readings", "working", "slip_credit", "reading_credit")


def rules_from(values: Mapping[str, object], known: Mapping[str, object],
               name: Callable[[str], str]) -> Rules:
    """:class:`Rules` from a ``[rules]`` table (or flags); errors name ``name(key)``."""
    for key in values:
        if key not in RULE_KEYS:
            raise ConvArgumentError(name(key), f"a key among {', '.join(RULE_KEYS)}", "an unknown key")
    settings: dict[str, object] = {}
    if "tolerance" in values:
        settings["tolerance"] = parse_tolerance(values["tolerance"], name("tolerance"))
    if "readings" in values:
        settings["readings"] = parse_readings(values["readings"], name("readings"), known)
    if "working" in values:
        settings["working_required"] = parse_working(values["working"], name("working"))
    for key in ("slip_credit", "reading_credit"):
        if key in values:
            settings[key] = parse_credit(values[key], name(key))
    return Rules(**settings)
