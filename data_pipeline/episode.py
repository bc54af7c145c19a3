"""The one in-memory episode schema every reader produces and every writer consumes.

Why one schema: LIBERO HDF5 files, LeRobot datasets (LIBERO, Bridge) and scripted simulator
demos all come in different layouts; converting each into `Episode` once (at read time, with
the gripper convention fixed there) means annotation, statistics and training samples are
written against a single type and never see a file format.

Conventions (docs/interfaces.md):
- images are uint8 `(T, H, W, 3)`, upright (already flipped `[::-1, ::-1]` for LIBERO renders);
  camera names `agentview`, `wrist` (other datasets may add more);
- action is `(T, A)` in the environment convention, gripper last: -1 = open, +1 = close;
- state is `(T, 8)` for LIBERO: eef_pos(3), axis-angle(eef_quat)(3), gripper qpos(2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from lara.utils.errors import LaraUserError

CAMERAS = ("agentview", "wrist")
LIBERO_ACTION_DIM = 7
LIBERO_STATE_DIM = 8


class EpisodeError(LaraUserError):
    """An episode's arrays are inconsistent; the message names the source, episode, key and fix."""


@dataclass
class Episode:
    """One demonstration, `T` frames. Arrays are numpy; frame `t` of every array is the same instant.

    `gripper` is the gripper signal used for temporal segmentation: for LIBERO/scripted data the
    gripper command (action[:, -1], -1 open / +1 close); readers without a command may store the
    opening instead and say so in `gripper_kind`.
    """

    images: dict[str, np.ndarray]  # camera -> (T, H, W, 3) uint8, upright
    state: np.ndarray  # (T, S) float32; S = 8 for LIBERO
    action: np.ndarray  # (T, A) float32; gripper last, -1 open / +1 close
    gripper: np.ndarray  # (T,) float32 gripper signal
    ee_pos: np.ndarray  # (T, 3) float32 end-effector position
    ee_ori: np.ndarray  # (T, 3) float32 end-effector orientation (axis-angle)
    instruction: str
    task_index: int = 0
    task_name: str = ""
    suite: str = ""
    episode_index: int = 0
    sim_states: np.ndarray | None = None  # (T, D) float64 flattened MuJoCo state, simulated episodes only
    bddl_file: str | None = None  # BDDL file name (LIBERO), for annotation from the simulator
    init_state: np.ndarray | None = None  # (D,) float64 state the episode started from (replay)
    expert_phases: list[str] | None = None  # scripted expert's phase per frame (ground truth for tests)
    gripper_kind: str = "command"  # "command" (-1 open / +1 close) or "opening" (larger = more open)
    source: str = ""  # file or dataset this episode came from, used in error messages
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. joint_states (T, 7), rewards, dones

    @property
    def length(self) -> int:
        return int(self.action.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action.shape[1])

    def _where(self, key: str) -> str:
        src = self.source or "<memory>"
        return f"{src}, episode {self.episode_index}, key {key!r}"

    def validate(self, action_dim: int | None = None, state_dim: int | None = None) -> Episode:
        """Raise `EpisodeError` on empty/mismatched/non-finite data or a wrong action dim; returns self."""
        if self.action.ndim != 2:
            raise EpisodeError(f"{self._where('action')}: expected (T, A), got shape {self.action.shape}")
        T = self.length
        if T == 0:
            raise EpisodeError(
                f"{self._where('action')}: episode is empty (0 frames); drop it from the dataset"
            )
        if action_dim is not None and self.action_dim != action_dim:
            raise EpisodeError(
                f"{self._where('action')}: action has {self.action_dim} dims, expected {action_dim}; "
                "check the dataset's key mapping (configs/data/*.yaml) or the --action-dim setting"
            )
        if state_dim is not None and (self.state.ndim != 2 or self.state.shape[1] != state_dim):
            raise EpisodeError(
                f"{self._where('state')}: expected (T, {state_dim}), got shape {self.state.shape}"
            )
        if not self.images:
            raise EpisodeError(f"{self._where('images')}: no camera images; map at least one camera key")
        arrays: dict[str, np.ndarray] = {
            "state": self.state,
            "gripper": self.gripper,
            "ee_pos": self.ee_pos,
            "ee_ori": self.ee_ori,
        }
        arrays.update({f"images.{cam}": img for cam, img in self.images.items()})
        if self.sim_states is not None:
            arrays["sim_states"] = self.sim_states
        arrays.update({f"extras.{k}": v for k, v in self.extras.items()})
        for key, arr in arrays.items():
            if arr.shape[0] != T:
                raise EpisodeError(
                    f"{self._where(key)}: has {arr.shape[0]} frames but action has {T}; the episode is "
                    "truncated or misaligned, re-export it"
                )
        for cam, img in self.images.items():
            if img.dtype != np.uint8 or img.ndim != 4 or img.shape[-1] != 3:
                raise EpisodeError(
                    f"{self._where('images.' + cam)}: expected uint8 (T, H, W, 3), got {img.dtype} "
                    f"{img.shape}"
                )
        if self.ee_pos.shape[1:] != (3,) or self.ee_ori.shape[1:] != (3,):
            raise EpisodeError(
                f"{self._where('ee_pos/ee_ori')}: expected (T, 3) each, got "
                f"{self.ee_pos.shape} and {self.ee_ori.shape}"
            )
        for key, arr in (("action", self.action), ("state", self.state), ("gripper", self.gripper)):
            finite = np.isfinite(arr)
            if not finite.all():
                frame = int(np.argwhere(~finite)[0][0])
                raise EpisodeError(
                    f"{self._where(key)}: NaN/inf at frame {frame}; clean or drop this episode before use"
                )
        if self.expert_phases is not None and len(self.expert_phases) != T:
            raise EpisodeError(
                f"{self._where('expert_phases')}: {len(self.expert_phases)} phases for {T} frames"
            )
        return self

    def slice(self, keep: np.ndarray) -> Episode:
        """A new episode with only the frames where `keep` ((T,) bool or index array) selects."""
        keep = np.asarray(keep)
        phases = (
            None
            if self.expert_phases is None
            else [self.expert_phases[i] for i in np.arange(self.length)[keep]]
        )
        return replace(
            self,
            images={c: v[keep] for c, v in self.images.items()},
            state=self.state[keep],
            action=self.action[keep],
            gripper=self.gripper[keep],
            ee_pos=self.ee_pos[keep],
            ee_ori=self.ee_ori[keep],
            sim_states=None if self.sim_states is None else self.sim_states[keep],
            expert_phases=phases,
            extras={k: v[keep] for k, v in self.extras.items()},
        )


def noop_mask(action: np.ndarray, threshold: float = 1e-4) -> np.ndarray:
    """(T,) bool, True for no-op frames in the `*_no_noops` sense (openvla's LIBERO regeneration).

    A frame is a no-op when its arm action is (near) zero and its gripper command equals the
    previous frame's: it neither moves the arm nor changes the gripper, so it teaches "stand
    still". As in openvla's `is_noop`, the first frame (no previous action) is a no-op when its
    arm part alone is zero.
    """
    arm_zero = np.linalg.norm(action[:, :-1], axis=1) < threshold
    grip = action[:, -1]
    same_grip = np.concatenate([[True], grip[1:] == grip[:-1]])
    return arm_zero & same_grip
