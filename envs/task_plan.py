"""An ordered list of expert skills for a conjunction of LIBERO goal atoms (pure: no simulator).

Why: libero_goal and libero_10 ask for more than one pick-and-place (open a drawer, turn a knob,
push a plate, two objects in a basket, a bowl in a drawer and then close it). The scripted expert
runs one skill at a time; this module decides which skills, in which order:

- `Open(r)` / `Close(r)` -> `open` / `close` the articulated fixture that holds region `r` (a
  drawer; a hinged door is closed only: `envs.expert_skills.hinge_push`);
- `TurnOn(f)` / `TurnOff(f)` -> `turn_on` / `turn_off` the fixture's knob; first, because placing
  objects later does not touch the knob, while the arm turning a knob beside a placed pot could;
- `On(o, t)` / `In(o, t)` -> `place` (pick-and-place), or `push` for objects the gripper cannot
  lift (a flat plate: `push_objects`); a place into a region that sits in a closed articulated
  part (`needs_open`: a drawer) opens it first, unless the goal itself asks for it to be open;
- every `close` runs last (after the objects were put inside).

The atoms' order in the BDDL is kept otherwise. `Step.atom` is the goal atom the step serves
(None for an inserted `open`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from envs.bddl_goals import Close, In, On, Open, Predicate, TurnOff, TurnOn

# set_aside: a place onto a free table spot, inserted by the expert (envs.set_aside), never planned here
SKILLS: tuple[str, ...] = ("open", "close", "turn_on", "turn_off", "place", "push", "set_aside")

# Tasks whose goals these skills cover but whose scenes defeat them (task name -> why; see
# benchmarks/RESULTS_scripted_expert.md): the expert refuses them rather than rolling them out. None
# today: libero_goal's last one (open the top drawer and put the bowl inside) fits the 300-step limit
# since the drawer skill waits 7 steps for its grasp and 6 for its release (280-296 steps).
UNSOLVED_TASKS: dict[str, str] = {}


@dataclass(frozen=True)
class Step:
    """One skill call: `skill` in SKILLS, `obj` (moved object, or the fixture / region acted on),
    `target` (placement target for `place` / `push`, else None: a `set_aside`'s spot is chosen when
    it starts)."""

    skill: str
    obj: str
    target: str | None = None
    atom: Predicate | None = None

    @property
    def inside(self) -> bool:
        """`place` into a region (In) rather than onto something (On)."""
        return isinstance(self.atom, In)

    def __str__(self) -> str:
        return f"{self.skill}({self.obj}{', ' + self.target if self.target else ''})"


def plan_task(
    goal: Sequence[Predicate],
    push_objects: set[str] | frozenset[str] = frozenset(),
    needs_open: Callable[[str], str | None] = lambda target: None,
) -> list[Step]:
    """Goal atoms -> ordered steps. `needs_open(target)`: the region to open before placing into
    `target` (None when nothing must be opened). Unknown atoms are not planned: the caller refuses
    them (`unplanned`)."""
    first: list[Step] = []
    middle: list[Step] = []
    last: list[Step] = []
    opened = {a.obj for a in goal if isinstance(a, Open)}
    for atom in goal:
        if isinstance(atom, Open):
            middle.append(Step("open", atom.obj, atom=atom))
        elif isinstance(atom, Close):
            last.append(Step("close", atom.obj, atom=atom))
        elif isinstance(atom, (TurnOn, TurnOff)):
            first.append(Step("turn_on" if isinstance(atom, TurnOn) else "turn_off", atom.obj, atom=atom))
        elif isinstance(atom, (On, In)):
            obj, target = atom.args
            region = needs_open(target)
            if region is not None and region not in opened:
                opened.add(region)
                middle.append(Step("open", region))
            middle.append(Step("push" if obj in push_objects else "place", obj, target, atom))
    return first + middle + last


def unplanned(goal: Sequence[Predicate]) -> list[Predicate]:
    """Atoms `plan_task` has no skill for."""
    return [a for a in goal if not isinstance(a, (Open, Close, TurnOn, TurnOff, On, In))]
