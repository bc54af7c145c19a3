"""envs.task_plan orders the expert's skills for a conjunction of goal atoms (no simulator)."""

from __future__ import annotations

from envs.bddl_goals import Close, In, On, Open, TurnOn, UnknownPredicate, parse_goal_state
from envs.task_plan import Step, plan_task, unplanned


def _skills(steps: list[Step]) -> list[str]:
    return [str(s) for s in steps]


def test_single_atoms_map_to_one_skill() -> None:
    assert _skills(plan_task([Open("cab_middle_region")])) == ["open(cab_middle_region)"]
    assert _skills(plan_task([TurnOn("flat_stove_1")])) == ["turn_on(flat_stove_1)"]
    steps = plan_task([On("bowl_1", "plate_1")])
    assert _skills(steps) == ["place(bowl_1, plate_1)"] and not steps[0].inside
    assert plan_task([In("soup_1", "basket_1_contain_region")])[0].inside


def test_a_drawer_region_is_opened_before_placing_and_closed_last() -> None:
    # libero_10 task 3's goal order: Close first in the BDDL, yet it must run after the place
    goal = parse_goal_state([["close", "cab_bottom_region"], ["in", "bowl_1", "cab_bottom_region"]])
    steps = plan_task(goal, needs_open=lambda t: t if t.endswith("_region") else None)
    assert _skills(steps) == [
        "open(cab_bottom_region)",
        "place(bowl_1, cab_bottom_region)",
        "close(cab_bottom_region)",
    ]
    assert steps[0].atom is None and isinstance(steps[2].atom, Close)


def test_open_is_not_repeated_when_the_goal_asks_for_it() -> None:
    goal = [Open("cab_top_region"), In("bowl_1", "cab_top_region")]
    steps = plan_task(goal, needs_open=lambda t: t)
    assert _skills(steps) == ["open(cab_top_region)", "place(bowl_1, cab_top_region)"]


def test_knobs_first_then_places_in_goal_order_and_push_objects() -> None:
    goal = [On("pot_1", "stove_cook_region"), On("pot_2", "stove_cook_region"), TurnOn("stove_1")]
    assert _skills(plan_task(goal)) == [
        "turn_on(stove_1)",
        "place(pot_1, stove_cook_region)",
        "place(pot_2, stove_cook_region)",
    ]
    assert plan_task([On("plate_1", "front_region")], push_objects={"plate_1"})[0].skill == "push"


def test_unknown_atoms_are_reported_not_planned() -> None:
    goal = [UnknownPredicate("stack", ("a", "b")), On("a", "b")]
    assert unplanned(goal) == [goal[0]]
    assert _skills(plan_task(goal)) == ["place(a, b)"]
