"""Typed options, the base shared by conversion targets and quantization recipes: each declares
the options it honours as a frozen dataclass; ``build_options`` is the one place (shared by the
CLI and the library) that refuses an option a target does not have and validates values, naming
the target and its valid options. ``positive_int`` is the one check of a count option.

Ground layer: imports nothing from the package but errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from .errors import OptionError


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class TargetOptions:
    """Base: subclasses add fields (the CLI flag is ``--field-name``) and ``validate``."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def validate(self, target: str) -> None:  # noqa: B027  (targets override what they check)
        """Raise OptionError for a value out of range."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if v is not None and not isinstance(v, (int, float, str, bool))
                         else v) for f in fields(self) if (v := getattr(self, f.name)) is not None}


T = TypeVar("T", bound=TargetOptions)


def positive_int(value: object, flag_name: str, minimum: int = 1, maximum: int | None = None,
                 hint: str = "") -> int:
    """The one check of a count option (``--flag``): an int (not a bool) in ``minimum..maximum``,
    or one OptionError line saying what is expected (``hint``: e.g. " (0: any free port)")."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum \
            or (maximum is not None and value > maximum):
        if maximum is not None:
            raise OptionError(f"{flag_name} {value!r} is out of range; use {minimum}..{maximum}{hint}")
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise OptionError(f"{flag_name} {value!r} must be {what}{hint}")
    return value


def batch_sizes(values: object, flag_name: str = "--batch-sizes") -> list[int]:
    """A non-empty list of positive batch sizes."""
    if not isinstance(values, (list, tuple)) or not values or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in values):
        raise OptionError(f"{flag_name}: batch sizes must be positive integers, got "
                          f"{list(values) if isinstance(values, (list, tuple)) else values!r}")
    return list(values)


def choice(target: str, name: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise OptionError(f"{flag(name)} {value!r} is not available for --to {target}; "
                          f"choose {', '.join(map(str, choices))}")


def build_options(target: str, cls: type[T], given: T | Mapping[str, object] | None) -> T:
    """``given``: an options object, or name -> value where None means 'not given'."""
    if isinstance(given, cls):
        opts = given
    elif isinstance(given, TargetOptions):
        raise OptionError(f"{type(given).__name__} is not the options type of --to {target} "
                          f"({cls.__name__})")
    else:
        values = {k: v for k, v in (given or {}).items() if v is not None and v is not False}
        unknown = [k for k in values if k not in cls.names()]
        if unknown:
            valid = ", ".join(flag(n) for n in cls.names()) or "none"
            raise OptionError(f"{', '.join(flag(k) for k in unknown)} does not apply to --to "
                              f"{target}; --to {target} takes: {valid}")
        opts = cls(**values)
    opts.validate(target)
    return opts
