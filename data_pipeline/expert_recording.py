"""Step the scripted expert in a LIBERO env and record every frame: the one loop behind both
`lara collect`'s demos (data_pipeline.collect_worker) and the `sim` annotator's ground truth
(data_pipeline.annotation.expert_truth).

Frame t holds the observation before action t; `expert_phases[t]` is the expert's phase when it
chose action t. Imports only numpy (and the numpy-only `Episode`): collection worker processes import
this, never torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from data_pipeline.episode import Episode

StopAt = Literal["expert_done", "success"]


def record_expert(
    env: Any,
    expert: Any,
    obs: Any,
    max_steps: int,
    stop_at: StopAt = "expert_done",
    tail: int = 0,
    joints: bool = False,
) -> tuple[dict[str, np.ndarray], bool]:
    """Run `expert` (already reset) from `obs` for at most `max_steps` actions.

    stop_at: "expert_done" stops when the expert reaches its "done" phase (the release and
    retract are recorded); "success" stops at the first step LIBERO's predicate holds.
    tail: frames still recorded after the stop condition first holds.
    joints: also record the arm's joint positions ("joint_states", (T, 7)).

    Returns (arrays, success) where success is the predicate of the last step taken. With
    render=False the images are black frames of the camera size (the `sim` annotator replays
    states and needs no pixels).
    """
    blank = np.zeros((env.camera_size, env.camera_size, 3), dtype=np.uint8)
    joint_idx = list(env.raw_env.robots[0]._ref_joint_pos_indexes) if joints else []
    keys = ("agentview", "wrist", "state", "action", "sim_state", "phase") + (("joints",) if joints else ())
    frames: dict[str, list] = {k: [] for k in keys}
    done, frames_left = False, None
    for _ in range(max_steps):
        phase = expert.phase  # the phase the next action is computed in
        action = np.asarray(expert.select_action(obs), dtype=np.float32)  # (7,)
        frames["agentview"].append(obs.images.get("agentview", blank))
        frames["wrist"].append(obs.images.get("wrist", blank))
        frames["state"].append(obs.state)
        frames["sim_state"].append(obs.sim_state)
        frames["action"].append(action)
        frames["phase"].append(phase)
        if joints:
            frames["joints"].append(np.array(env.sim.data.qpos[joint_idx], dtype=np.float32))
        obs, done, _ = env.step(action)
        stopped = expert.phase == "done" if stop_at == "expert_done" else done
        if stopped and frames_left is None:
            frames_left = tail
        elif frames_left is not None:
            frames_left -= 1
        if frames_left is not None and frames_left <= 0:
            break
    arrays = {
        "images.agentview": np.stack(frames["agentview"]),  # (T, S, S, 3) uint8
        "images.wrist": np.stack(frames["wrist"]),
        "state": np.stack(frames["state"]).astype(np.float32),  # (T, 8)
        "action": np.stack(frames["action"]),  # (T, 7)
        "sim_states": np.stack(frames["sim_state"]).astype(np.float64),  # (T, D)
        "expert_phases": np.array(frames["phase"]),
    }
    if joints:
        arrays["joint_states"] = np.stack(frames["joints"])  # (T, 7)
    return arrays, bool(done)


def episode_from_recording(arrays: Mapping[str, np.ndarray], **meta: Any) -> Episode:
    """`record_expert`'s arrays (in memory, or read back from a worker's npz) -> Episode.

    meta: the fields a recording does not hold (instruction, task_index, task_name, suite,
    episode_index, bddl_file, init_state, source and optionally extras). The gripper signal is the
    gripper command (action[:, -1]): the expert's intent, which the annotator segments on.
    """
    state, action = arrays["state"], arrays["action"].astype(np.float32)  # (T, 8), (T, 7)
    return Episode(
        images={"agentview": arrays["images.agentview"], "wrist": arrays["images.wrist"]},
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        sim_states=arrays["sim_states"],
        expert_phases=[str(p) for p in arrays["expert_phases"]],
        **meta,
    )
