"""Typed goal predicates of a LIBERO task, from its BDDL file.

Why: the scripted expert needs to know *what* a task asks
(`In(alphabet_soup_1, basket_1_contain_region)`) without re-parsing lists of lowercase strings.
LIBERO's own parser, run when the env is built, already turns the `(:goal (And ...))` block into
`parsed_problem["goal_state"] = [["in", "alphabet_soup_1", "basket_1_contain_region"], ...]`; this
module maps each entry to a frozen dataclass (`goal_from_env`). Only conjunctions of atoms occur
in the shipped suites (In, On, Open, Close, TurnOn, TurnOff); anything else becomes
`UnknownPredicate` rather than being dropped, so a consumer can refuse it explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lara.utils.errors import LaraUserError


@dataclass(frozen=True)
class Predicate:
    """Base of all goal atoms."""

    @property
    def args(self) -> tuple[str, ...]:
        return tuple(getattr(self, f) for f in self.__dataclass_fields__)  # type: ignore[attr-defined]

    def __str__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.args)})"


@dataclass(frozen=True)
class On(Predicate):
    """`obj` rests on `target` (an object, or a site region such as a stove's cook region)."""

    obj: str
    target: str


@dataclass(frozen=True)
class In(Predicate):
    """`obj` is inside `target_region` (a site region, e.g. `basket_1_contain_region`)."""

    obj: str
    target_region: str


@dataclass(frozen=True)
class Open(Predicate):
    """An articulated fixture (region) is open, e.g. a drawer."""

    obj: str


@dataclass(frozen=True)
class Close(Predicate):
    obj: str


@dataclass(frozen=True)
class TurnOn(Predicate):
    obj: str


@dataclass(frozen=True)
class TurnOff(Predicate):
    obj: str


@dataclass(frozen=True)
class UnknownPredicate(Predicate):
    """A goal atom this module does not model; kept verbatim so that callers can refuse it."""

    predicate: str
    arguments: tuple[str, ...]

    @property
    def args(self) -> tuple[str, ...]:
        return self.arguments

    def __str__(self) -> str:
        return f"{self.predicate}({', '.join(self.arguments)})"


_BINARY: dict[str, type[Predicate]] = {"on": On, "in": In}
_UNARY: dict[str, type[Predicate]] = {"open": Open, "close": Close, "turnon": TurnOn, "turnoff": TurnOff}


def parse_atom(atom: Sequence[str]) -> Predicate:
    """One LIBERO goal entry, e.g. `["on", "akita_black_bowl_1", "plate_1"]` -> `On(...)`."""
    if len(atom) == 0:
        raise LaraUserError("empty goal predicate in BDDL goal")
    head, rest = str(atom[0]).lower(), tuple(str(a) for a in atom[1:])
    if head in _BINARY and len(rest) == 2:
        return _BINARY[head](*rest)
    if head in _UNARY and len(rest) == 1:
        return _UNARY[head](*rest)
    return UnknownPredicate(head, rest)


def parse_goal_state(goal_state: Sequence[Sequence[str]]) -> list[Predicate]:
    """LIBERO's `parsed_problem["goal_state"]` (a conjunction) -> typed predicates, in order."""
    return [parse_atom(atom) for atom in goal_state]


def goal_from_env(env: Any) -> list[Predicate]:
    """Goal of a built env: an `envs.libero_env.LiberoEnv` or LIBERO's raw problem env."""
    raw = getattr(env, "raw_env", env)
    problem = getattr(raw, "parsed_problem", None)
    if problem is None:
        raise LaraUserError(f"{type(env).__name__} has no parsed BDDL problem (expected a LIBERO env)")
    return parse_goal_state(problem["goal_state"])
