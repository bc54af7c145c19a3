"""The scripted expert's settings (envs/scripted_expert.py runs them; envs/grasp_planning.py reads the
grasp heights). Their own module so that the planner and the expert both import it and neither
imports the other."""

from __future__ import annotations

from dataclasses import dataclass

from lara.utils.errors import LaraUserError


@dataclass
class ExpertConfig:
    """Heights in metres, gains in action units per unit of controller output range."""

    kp_pos: float = 1.6  # action = kp * err / output_max   (err 3 cm saturates)
    kd_pos: float = 1.0  # minus kd * velocity(m/step) / output_max
    kp_rot: float = 1.5
    max_open_width: float = 0.068  # objects up to this width are grasped across; wider: rim grasp
    grasp_depth: float = 0.03  # eef below object top for across grasps
    rim_depth: float = 0.022  # eef below rim top for rim grasps
    min_bottom_clear: float = 0.012  # eef at least this above the object's bottom
    pregrasp_height: float = 0.07  # above the grasp point
    carry_clearance: float = 0.04  # held object's bottom above obstacles while carrying
    place_clearance: float = 0.012  # held object's bottom above the target surface at release
    in_region_bottom: float = 0.035  # held object's bottom above an In region's floor at release
    retract_height: float = 0.08
    pos_tol: float = 0.008
    rot_tol: float = 0.08  # rad
    max_regrasps: int = 2

    def __post_init__(self) -> None:
        if self.kp_pos <= 0 or self.kp_rot <= 0:
            raise LaraUserError("expert gains must be positive")
        if self.max_regrasps < 0:
            raise LaraUserError("max_regrasps must be >= 0")
