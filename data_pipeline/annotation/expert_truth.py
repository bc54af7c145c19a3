"""The scripted expert as ground truth for the `sim` annotator: one expert episode recorded in
memory, and the map from the expert's phases to the annotator's.

Used by the `sim` annotation tests and `benchmarks/annotation_accuracy.py`, which compare the
annotator's segmentation with the phase the expert was in at every frame. The collector
(`data_pipeline.collect`) writes whole datasets; this records one episode in memory, with the same
loop (`data_pipeline.expert_recording`).
"""

from __future__ import annotations

from data_pipeline.annotation.segmentation import GRASP, MOVE_TO_GOAL, MOVE_TO_OBJECT, PLACE, RETRACT
from data_pipeline.episode import Episode
from data_pipeline.expert_recording import episode_from_recording, record_expert

# envs.scripted_expert phase -> annotator phase
EXPERT_TO_PHASE = {
    "approach": MOVE_TO_OBJECT,
    "descend": MOVE_TO_OBJECT,
    "grasp": GRASP,
    "lift": MOVE_TO_GOAL,
    "carry": MOVE_TO_GOAL,
    "lower": MOVE_TO_GOAL,
    "pull": MOVE_TO_GOAL,  # a drawer pulled open, its handle held (envs.expert_skills.articulated)
    "turn": MOVE_TO_GOAL,  # a knob turned, held
    "push": MOVE_TO_GOAL,  # a drawer, a door or an object pushed with the closed fingers
    "release": PLACE,
    "retract": RETRACT,
    "done": RETRACT,
}


def record_expert_episode(env, init_index: int = 0, max_steps: int | None = None, tail: int = 9) -> Episode:
    """Run envs.scripted_expert.ScriptedExpert on `env` (a LiberoEnv; with render=False the images are
    black frames, which is all the `sim` backend needs: it replays states) from init state
    `init_index` for at most `max_steps` (default: the suite's limit), recording `tail` more frames
    after the expert reaches "done".
    """
    from envs.scripted_expert import ScriptedExpert

    expert = ScriptedExpert(env)
    obs = env.reset(init_index)
    expert.reset()
    limit = env.max_steps if max_steps is None else max_steps
    arrays, _ = record_expert(env, expert, obs, limit, stop_at="expert_done", tail=tail)
    return episode_from_recording(
        arrays,
        instruction=env.instruction,
        task_index=env.task_id,
        task_name=env.task_name,
        suite=env.suite,
        episode_index=init_index,
        bddl_file=env.bddl_path,
        init_state=env.init_states[init_index],
        source=f"scripted:{env.suite}/{env.task_id}",
    )
