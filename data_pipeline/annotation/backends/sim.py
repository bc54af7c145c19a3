"""`sim` backend (LIBERO): task objects from the BDDL goal, boxes from the replayed MuJoCo state.

Why replay: LIBERO episodes (official HDF5 and our scripted demos) store the flattened MuJoCo
state of every frame. Setting it and calling `forward()` puts every object exactly where it was
when the image was taken, so boxes are projected from the true poses through the true camera;
no detector, no guessing. Which object is manipulated in which grasp cycle is read from the
simulator too (the task object closest to the end effector when the gripper closes).

Names: BDDL keys (`akita_black_bowl_1`) are shown with the instruction's own words ("black bowl")
when they match, so the OBJECTS tag and the SUBTASK text agree with the instruction.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from data_pipeline.annotation.backends.base import Box, ObjectAnchor, SemanticAnchors, SkipEpisode
from data_pipeline.annotation.instruction_parser import Step, parse_instruction
from data_pipeline.annotation.projection import (
    box_from_uv,
    camera_matrix,
    project,
    robot_geoms,
    to_dataset_view,
)
from data_pipeline.annotation.pushes import HINGE_LEVER, TOUCH_WINDOW, find_pushes
from data_pipeline.annotation.segmentation import GRASP, MOVE_TO_GOAL, MOVE_TO_OBJECT, PLACE, TemporalAnchors
from data_pipeline.episode import Episode
from envs.scene_geometry import SceneGeometry

if TYPE_CHECKING:
    from data_pipeline.annotation.config import AnnotationConfig

logger = logging.getLogger(__name__)
ROBOSUITE_CAMERA = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
_STOP = {"the", "a", "an", "of", "region", "contain", "1", "2", "3", "4"}
_RELATION = {"on": "on", "in": "in"}


def touched_geoms(sim: Any, fingers: set[int], robot: set[int]) -> list[int]:
    """Geoms that are not the robot's and touch one of `fingers` (after forward())."""
    data = sim.data._data
    out: list[int] = []
    for i in range(int(data.ncon)):
        a, b = int(data.contact[i].geom1), int(data.contact[i].geom2)
        if a in fingers and b not in robot:
            out.append(b)
        elif b in fingers and a not in robot:
            out.append(a)
    return out


def scene_coordinates(sim: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """qpos columns of every scene joint that is not the robot's (a free joint's position, a hinge's
    or a slide's coordinate), their metres per unit (`pushes.HINGE_LEVER` for a hinge) and the
    joint name of each."""
    model = sim.model._model
    cols: list[int] = []
    scale: list[float] = []
    owners: list[str] = []
    for j in range(model.njnt):
        name = sim.model.joint_id2name(j) or ""
        adr = int(model.jnt_qposadr[j])
        if not name.startswith(("robot", "gripper")):
            kind = int(model.jnt_type[j])  # 0 free, 1 ball, 2 slide, 3 hinge
            if kind == 1:
                continue  # a ball joint's quaternion is no distance
            width = 3 if kind == 0 else 1  # a free joint: its position only
            cols += range(adr, adr + width)
            scale += [HINGE_LEVER if kind == 3 else 1.0] * width
            owners += [name] * width
    return np.array(cols, dtype=int), np.array(scale), owners


def _tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[\s_]+", text.lower()) if t and t not in _STOP and not t.isdigit()}


def humanize(key: str) -> str:
    """'akita_black_bowl_1' -> 'akita black bowl'; 'wooden_cabinet_1_top_region' -> 'wooden cabinet top'."""
    words = [w for w in key.split("_") if w and not w.isdigit() and w not in ("region", "contain")]
    return " ".join(words)


def match_name(key: str, phrases: list[str]) -> str:
    """The instruction phrase sharing the most words with a BDDL key (ties: fewest extra words)."""
    kt = _tokens(key)
    best, best_score = "", (0.0, 0.0)
    for phrase in phrases:
        pt = _tokens(phrase)
        if not pt:
            continue
        overlap = len(kt & pt)
        score = (overlap / len(pt), overlap / max(1, len(kt)))
        if overlap and score > best_score:
            best, best_score = phrase, score
    return best or humanize(key)


class SimBackend:
    name = "sim"

    def __init__(self, config: AnnotationConfig, env_factory: Callable[[Episode], Any] | None = None):
        self.config = config
        self._env_factory = env_factory
        self._env_key: tuple[str, int, int, int] | None = None
        self._env: Any = None
        self._geometry: SceneGeometry | None = None

    # ------------------------------------------------------------------ environment
    def _default_env(self, episode: Episode) -> Any:
        from envs.libero_env import LiberoEnv

        return LiberoEnv(episode.suite, int(episode.task_index), camera_size=128, render=False)

    def _env_for(self, episode: Episode) -> Any:
        if not episode.suite:
            raise SkipEpisode("no LIBERO suite/task recorded for the episode (needed to rebuild the scene)")
        key = (episode.suite, int(episode.task_index), 0, 0)
        if self._env is None or self._env_key != key:
            self.close()
            logger.info(
                "building the LIBERO scene %s task %d for state replay", episode.suite, episode.task_index
            )
            try:
                self._env = (self._env_factory or self._default_env)(episode)
            except Exception as err:  # a wrong suite/task id is the episode's problem, not the run's
                raise SkipEpisode(
                    f"cannot build the LIBERO scene for {episode.suite} task {episode.task_index}: {err}"
                ) from err
            self._env_key = key
            self._geometry = SceneGeometry(self._env)
        return self._env

    def close(self) -> None:
        if self._env is not None and self._env_factory is None:
            self._env.close()
        self._env, self._env_key, self._geometry = None, None, None

    # ------------------------------------------------------------------ anchors
    def _box_key(self, raw: Any, key: str) -> str:
        """What a goal key is boxed as: objects as themselves; a region on a moving part of a fixture
        (a drawer) as that part's geoms; any other region as its whole object (basket, stove, cabinet)."""
        if key in raw.obj_body_id:
            return key
        site = raw.object_sites_dict.get(key)
        parent = getattr(site, "parent_name", None)
        geo = self._geometry
        if geo is not None and key in geo.site_names:
            model = geo.model
            body = int(model.site_bodyid[self._env.sim.model.site_name2id(key)])
            root = raw.obj_body_id.get(parent)
            if body != root and int(model.body_jntnum[body]) > 0:  # e.g. wooden_cabinet_1_cabinet_middle
                geo.add_part(key, body)
                return key
        if parent in raw.obj_body_id:
            return parent
        return key

    def _task_keys(self, raw: Any) -> tuple[list[tuple[str, str, str, str]], list[str]]:
        """Goal atoms as (verb, obj key, relation, target key) and the task keys in listing order."""
        atoms: list[tuple[str, str, str, str]] = []
        for atom in raw.parsed_problem.get("goal_state", []):
            pred, args = str(atom[0]).lower(), [str(a) for a in atom[1:]]
            if pred in _RELATION and len(args) == 2:
                atoms.append(("put", args[0], _RELATION[pred], args[1]))
            elif pred in ("open", "close", "turnon", "turnoff") and args:
                atoms.append(({"turnon": "turn_on", "turnoff": "turn_off"}.get(pred, pred), args[0], "", ""))
        keys: list[str] = []
        for _, obj, _, _ in atoms:
            if obj not in keys:
                keys.append(obj)
        for _, _, _, tgt in atoms:
            if tgt and tgt not in keys:
                keys.append(tgt)
        for k in list(raw.obj_of_interest):
            if k not in keys:
                keys.append(k)
        if self.config.sim_distractors:
            keys += [k for k in raw.objects_dict if k not in keys]
        return atoms, keys

    def anchors(self, episode: Episode, temporal: TemporalAnchors) -> SemanticAnchors:
        if episode.sim_states is None:
            raise SkipEpisode("no simulator states (the sim backend replays them; use --backend instruction)")
        cam = self.config.camera
        if cam not in episode.images or cam not in ROBOSUITE_CAMERA:
            raise SkipEpisode(f"no {cam!r} images (boxes are given in that camera's pixels)")
        env = self._env_for(episode)
        raw, sim, geo = env.raw_env, env.sim, self._geometry
        assert geo is not None
        states = np.asarray(episode.sim_states, dtype=np.float64)  # (T, D)
        expected_dim = int(np.asarray(sim.get_state().flatten()).shape[0])
        if states.shape[1] != expected_dim:
            raise SkipEpisode(
                f"simulator state has {states.shape[1]} values, the {episode.suite} task "
                f"{episode.task_index} scene has {expected_dim}: wrong task or another simulator version"
            )
        atoms, keys = self._task_keys(raw)
        seen_box: set[str] = set()
        unique: list[str] = []
        for k in keys:  # a container's region and the container itself are one box ("basket"), listed once
            bk = self._box_key(raw, k)
            if geo.has(bk) and bk not in seen_box:
                seen_box.add(bk)
                unique.append(k)
        keys = unique
        parsed = parse_instruction(episode.instruction)
        phrases = parsed.objects
        names = {k: match_name(k, phrases) for k in keys}
        steps = parsed.steps or [
            Step(
                verb=v,
                obj=names.get(o, humanize(o)),
                relation=r,
                target=names.get(t, humanize(t)) if t else "",
            )
            for v, o, r, t in atoms
        ]
        roles = {o: "object" for _, o, _, _ in atoms}
        roles.update({t: "target" for _, _, _, t in atoms if t and t not in roles})
        objects = [ObjectAnchor(name=names[k], role=roles.get(k, "other"), key=k) for k in keys]

        H, W = episode.images[cam].shape[1:3]
        cam_name = ROBOSUITE_CAMERA[cam]
        boxes: list[dict[str, Box]] = []
        closes = set(temporal.close_events)
        cycle_steps: list[int] = []
        step_keys = [self._step_key(st, names) for st in steps]
        scene_cols, scene_scale, scene_joints = scene_coordinates(sim)
        robot = set(robot_geoms(sim).tolist())
        fingers = set(robot_geoms(sim, ("gripper0_",)).tolist())
        touching = np.zeros(states.shape[0], dtype=bool)  # (T,)
        # what the fingers touch, per frame: the objects and fixtures (by their root body; a fixture
        # may stand elsewhere in this rebuilt scene, the objects are where the states put them)
        owner_of = {int(sim.model._model.body_rootid[b]): name for name, b in raw.obj_body_id.items()}
        touched_by_frame: list[set[str]] = []
        scene_q = np.zeros((states.shape[0], len(scene_cols)))  # (T, J)
        for t in range(states.shape[0]):
            sim.set_state_from_flattened(states[t])
            sim.forward()
            touched = touched_geoms(sim, fingers, robot)
            touching[t] = bool(touched)
            model = sim.model._model
            roots = model.body_rootid[model.geom_bodyid[touched]] if touched else []
            touched_by_frame.append({owner_of[int(r)] for r in roots if int(r) in owner_of})
            scene_q[t] = sim.data.qpos[scene_cols]
            P = camera_matrix(sim, cam_name, H, W)  # (4, 4); the camera may move (wrist)
            frame: dict[str, Box] = {}
            for k in keys:
                uv, front = project(geo.visual_points(self._box_key(raw, k)), P)
                if not front.all():
                    uv = uv[front]
                box = box_from_uv(to_dataset_view(uv, W, H, "libero"), W, H, self.config.min_box_pixels)
                if box is not None:
                    frame[k] = box
            boxes.append(frame)
            if t in closes:
                cycle_steps.append(self._grasped_step(geo, raw, step_keys, episode.ee_pos[t]))
        flags = [f"object_never_in_view: {names[k]}" for k in keys if not any(k in fr for fr in boxes)]
        fixture = np.array(
            [not any(n.startswith(o) for o in raw.objects_dict) for n in scene_joints], dtype=bool
        )
        pushes = find_pushes(
            temporal.close_events, temporal.open_events, touching, scene_q, scene_scale, fixture
        )
        phrases: dict[tuple[int, str], str] = {}
        for cycle, push in pushes.items():  # the step of what was pushed, not of what was nearest the hand
            owner = scene_joints[push.joint]
            for i, key in enumerate(step_keys):
                if key is not None and cycle < len(cycle_steps) and owner.startswith(self._owner(raw, key)):
                    cycle_steps[cycle] = i
                    break
            if steps and cycle < len(cycle_steps):
                step = steps[cycle_steps[cycle]]
                if step.verb in ("put", "pick") and step.target:  # pushed the rest of the way in
                    phrases[(cycle, MOVE_TO_GOAL)] = f"push the {step.obj} {step.relation} the {step.target}"
        own = {self._owner(raw, k) for k in step_keys if k is not None}
        for cycle, close in enumerate(temporal.close_events):  # a grasp of an object no step names: set aside
            window = range(close + TOUCH_WINDOW[0], min(close + TOUCH_WINDOW[1], len(touched_by_frame)))
            held = Counter(o for t in window for o in touched_by_frame[t] if o in raw.objects_dict)
            key = held.most_common(1)[0][0] if held else None
            if cycle not in pushes and key is not None and key not in own:
                name = names.get(key) or humanize(key)
                phrases.update(
                    {
                        (cycle, MOVE_TO_OBJECT): f"move to the {name}",
                        (cycle, GRASP): f"grasp the {name}",
                        (cycle, MOVE_TO_GOAL): f"move the {name} out of the way",
                        (cycle, PLACE): f"set the {name} down",
                    }
                )
        return SemanticAnchors(
            objects=objects,
            steps=steps,
            boxes=boxes,
            cycle_steps=cycle_steps if steps else None,
            phrases=phrases,
            pushes=pushes,
            flags=flags,
        )

    @staticmethod
    def _owner(raw: Any, key: str) -> str:
        """The object or fixture whose joints move `key` (a region site moves with its parent)."""
        site = raw.object_sites_dict.get(key)
        return site.parent_name if site is not None else key

    @staticmethod
    def _step_key(step: Step, names: dict[str, str]) -> str | None:
        for key, name in names.items():
            if name == step.obj:
                return key
        return None

    def _grasped_step(self, geo: SceneGeometry, raw: Any, step_keys: list[str | None], ee: np.ndarray) -> int:
        """Index of the step whose object is nearest the end effector (the one being grasped)."""
        best, best_d = 0, float("inf")
        for i, key in enumerate(step_keys):
            if key is None:
                continue
            d = float(
                np.linalg.norm(geo.position(self._box_key(raw, key)) - np.asarray(ee, dtype=np.float64))
            )
            if d < best_d - 1e-9:
                best, best_d = i, d
        return best
