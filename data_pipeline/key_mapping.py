"""How a LeRobot dataset's columns map onto `Episode`: one typed config per dataset family.

Why a config and not code: LIBERO-as-LeRobot, BridgeData V2-as-LeRobot and the datasets we write
ourselves differ only in column names, state layout and the gripper convention. Naming that in a
YAML preset (`configs/data/<name>.yaml`) lets a user point LaRA at their own dataset without
touching code. The gripper convention is converted here, once, at read time (and inverted at
write time), so the model and the evaluator only ever see the environment's -1 open / +1 close.

`auto` (the readers' default) picks the one preset whose camera, state and action keys exist in
the dataset's `meta/info.json` with the preset's dimensions; none or several is an error that lists
every preset with why it does or does not fit, and the features seen.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import draccus
import numpy as np

from lara.utils.errors import LaraUserError

log = logging.getLogger(__name__)
AUTO = "auto"  # detect the preset from the dataset's features
IMAGE_DTYPES = ("image", "video")

# gripper conventions a dataset may store in its last action dimension
GRIPPER_CONVENTIONS = (
    "env",  # -1 = open, +1 = close (LIBERO environment; what LaRA uses everywhere)
    "open_1_close_0",  # 1 = open, 0 = close (Octo/OpenVLA-standardized Bridge, many RLDS datasets)
    "open_0_close_1",  # 0 = open, 1 = close
)
PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "data"


@dataclass
class KeyMapping:
    """LeRobot column names -> Episode fields. Slices are [start, stop) into the state vector."""

    name: str = "libero"
    cameras: dict[str, str] = field(
        default_factory=lambda: {
            "agentview": "observation.images.image",
            "wrist": "observation.images.wrist_image",
        }
    )
    state: str = "observation.state"
    action: str = "action"
    action_dim: int = 7
    state_dim: int = 8
    gripper_convention: str = "env"
    ee_pos_slice: tuple[int, int] = (0, 3)  # end-effector position inside the state vector
    ee_ori_slice: tuple[int, int] = (3, 6)  # end-effector orientation (axis-angle / rpy) inside the state
    flip_images: bool = False  # True when the dataset stores images upside down (raw MuJoCo renders)
    robot_type: str = "panda"
    fps: int = 20

    def __post_init__(self) -> None:
        if self.gripper_convention not in GRIPPER_CONVENTIONS:
            raise LaraUserError(
                f"key mapping {self.name!r}: unknown gripper_convention {self.gripper_convention!r}; "
                f"choose one of {GRIPPER_CONVENTIONS}"
            )
        if not self.cameras:
            raise LaraUserError(
                f"key mapping {self.name!r}: map at least one camera (cameras: {{agentview: ...}})"
            )
        for label, (lo, hi) in (("ee_pos_slice", self.ee_pos_slice), ("ee_ori_slice", self.ee_ori_slice)):
            if not (0 <= lo < hi <= self.state_dim and hi - lo == 3):
                raise LaraUserError(
                    f"key mapping {self.name!r}: {label}={[lo, hi]} must select 3 dims of the "
                    f"{self.state_dim}-dim state"
                )

    def gripper_to_env(self, g: np.ndarray) -> np.ndarray:
        """Dataset gripper values -> environment convention (-1 open / +1 close)."""
        if self.gripper_convention == "open_1_close_0":
            return 1.0 - 2.0 * g
        if self.gripper_convention == "open_0_close_1":
            return 2.0 * g - 1.0
        return g

    def gripper_from_env(self, g: np.ndarray) -> np.ndarray:
        """Environment convention -> the dataset's gripper values (inverse of `gripper_to_env`)."""
        if self.gripper_convention == "open_1_close_0":
            return (1.0 - g) / 2.0
        if self.gripper_convention == "open_0_close_1":
            return (g + 1.0) / 2.0
        return g


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_key_mapping(name_or_path: str | Path | KeyMapping, dataset: str | Path | None = None) -> KeyMapping:
    """A preset name (`libero`, `bridge`, ...), a YAML path, or `auto` (detected from `dataset`'s
    features) -> KeyMapping; unknown names are a user error."""
    if isinstance(name_or_path, KeyMapping):
        return name_or_path
    if str(name_or_path) == AUTO:
        if dataset is None:
            raise LaraUserError(
                f"key mapping 'auto' needs a dataset to detect it from; name one of {preset_names()}"
            )
        return detect_key_mapping(dataset)
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise LaraUserError(
            f"unknown key mapping {str(name_or_path)!r}: no file {path}; use one of {preset_names()} "
            "or a path to a YAML file with the KeyMapping fields"
        )
    try:
        with path.open() as f:
            return draccus.load(KeyMapping, f)
    except LaraUserError:
        raise
    except Exception as err:  # draccus raises several types for malformed YAML
        raise LaraUserError(
            f"key mapping {path}: cannot parse ({err}); compare with {PRESET_DIR / 'libero.yaml'}"
        ) from err


def dataset_features(root: str | Path) -> dict[str, dict]:
    """The `features` of a LeRobot dataset's meta/info.json (key -> dtype, shape, names)."""
    info = Path(root) / "meta" / "info.json"
    if not info.is_file():
        raise LaraUserError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    return json.loads(info.read_text()).get("features", {})


def misfits(mapping: KeyMapping, features: dict[str, dict]) -> list[str]:
    """Why `mapping` does not fit a dataset with these features (empty: it fits)."""
    out = []
    for key in mapping.cameras.values():
        if key not in features:
            out.append(f"no camera {key}")
        elif features[key].get("dtype") not in IMAGE_DTYPES:
            out.append(f"{key} is {features[key].get('dtype')}, not an image")
    columns = (("state", mapping.state, mapping.state_dim), ("action", mapping.action, mapping.action_dim))
    for label, key, dim in columns:
        if key not in features:
            out.append(f"no {label} {key}")
        elif int(np.prod(features[key].get("shape", ()))) != dim:
            out.append(f"{key} has shape {list(features[key].get('shape', ()))}, not [{dim}]")
    return out


def _describe(features: dict[str, dict]) -> str:
    return ", ".join(
        f"{key} ({spec.get('dtype')} {list(spec.get('shape', ()))})"
        for key, spec in features.items()
        if key.startswith(("observation.", "action"))
    )


def detect_key_mapping(root: str | Path) -> KeyMapping:
    """The one preset of configs/data/ whose keys and dimensions match the dataset's features."""
    features = dataset_features(root)
    presets = {name: load_key_mapping(name) for name in preset_names()}
    reasons = {name: misfits(mapping, features) for name, mapping in presets.items()}
    fitting = [name for name, why in reasons.items() if not why]
    if len(fitting) == 1:
        log.debug("%s: key mapping %s (detected from the dataset's features)", root, fitting[0])
        return presets[fitting[0]]
    if fitting:
        problem = f"presets {fitting} all fit its features"
    else:
        problem = (
            "no key-mapping preset fits its features ("
            + "; ".join(f"{name}: {', '.join(why)}" for name, why in reasons.items())
            + ")"
        )
    raise LaraUserError(
        f"{root}: {problem}; features seen: {_describe(features)}. Pass --mapping with a preset name or "
        f"a YAML path with the KeyMapping fields (see {PRESET_DIR})"
    )
