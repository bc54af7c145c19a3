"""The scripted expert as ground truth for the `sim` annotator: one expert episode recorded in
memory, and the map from the expert's phases to the annotator's.

Used by the `sim` annotation tests and `benchmarks/annotation_accuracy.py`, which compare the
annotator's segmentation with the phase the expert was in at every frame. The collector
(`data_pipeline.collect`) writes whole datasets; this records one short episode without a dataset.
"""

from __future__ import annotations

import numpy as np

from data_pipeline.annotation.segmentation import GRASP, MOVE_TO_GOAL, MOVE_TO_OBJECT, PLACE, RETRACT
from data_pipeline.episode import Episode

# envs.scripted_expert phase -> annotator phase
EXPERT_TO_PHASE = {
    "approach": MOVE_TO_OBJECT,
    "descend": MOVE_TO_OBJECT,
    "grasp": GRASP,
    "lift": MOVE_TO_GOAL,
    "carry": MOVE_TO_GOAL,
    "lower": MOVE_TO_GOAL,
    "release": PLACE,
    "retract": RETRACT,
    "done": RETRACT,
}


def record_expert_episode(env, init_index: int = 0, max_steps: int = 220, tail: int = 10) -> Episode:
    """Run envs.scripted_expert.ScriptedExpert on `env` (a LiberoEnv; with render=False the images are
    black frames of the camera size, which is all the `sim` backend needs: it replays states).

    Frame t holds the observation before action t; `expert_phases[t]` is the expert's phase when
    it chose action t. Stops `tail` frames after the expert reaches "done".
    """
    from envs.scripted_expert import ScriptedExpert

    expert = ScriptedExpert(env)
    obs = env.reset(init_index)
    expert.reset()
    frames: dict[str, list] = {k: [] for k in ("agentview", "wrist", "state", "action", "sim", "phase")}
    done_left = None
    for _ in range(max_steps):
        phase = expert.phase
        action = expert.select_action(obs)
        blank = np.zeros((env.camera_size, env.camera_size, 3), dtype=np.uint8)  # render=False: no pixels
        frames["agentview"].append(obs.images.get("agentview", blank))
        frames["wrist"].append(obs.images.get("wrist", blank))
        frames["state"].append(obs.state)
        frames["action"].append(action)
        frames["sim"].append(obs.sim_state)
        frames["phase"].append(phase)
        obs, _, _ = env.step(action)
        if expert.phase == "done" and done_left is None:
            done_left = tail
        if done_left is not None:
            done_left -= 1
            if done_left <= 0:
                break
    state = np.asarray(frames["state"], dtype=np.float32)  # (T, 8)
    action = np.asarray(frames["action"], dtype=np.float32)  # (T, 7)
    return Episode(
        images={"agentview": np.stack(frames["agentview"]), "wrist": np.stack(frames["wrist"])},
        state=state,
        action=action,
        gripper=action[:, -1].copy(),
        ee_pos=state[:, :3].copy(),
        ee_ori=state[:, 3:6].copy(),
        instruction=env.instruction,
        task_index=env.task_id,
        task_name=env.task_name,
        suite=env.suite,
        episode_index=init_index,
        sim_states=np.asarray(frames["sim"], dtype=np.float64),
        bddl_file=env.bddl_path,
        init_state=env.init_states[init_index],
        expert_phases=list(frames["phase"]),
        source=f"scripted:{env.suite}/{env.task_id}",
    )
