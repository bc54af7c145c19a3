"""`lara convert SRC DST`: LIBERO HDF5 file/folder -> LeRobot v3 dataset (thin main over `convert`)."""

from __future__ import annotations

from dataclasses import dataclass

import draccus

from data_pipeline.convert import convert_libero_hdf5
from lara.utils.errors import LaraUserError


@dataclass
class ConvertConfig:
    src: str = ""  # a LIBERO .hdf5 file or a folder of them
    dst: str = ""  # output LeRobot dataset folder (must not exist)
    keep_noops: bool = False  # keep no-op frames (default: drop them, the `no_noops` convention)
    image_orientation: str = "auto"  # auto (from the file's attribute) | raw (flip) | upright (keep)
    mapping: str = "libero"  # key-mapping preset the dataset is written with
    repo_id: str = "lara/converted"

    def __post_init__(self) -> None:
        if self.image_orientation not in ("auto", "raw", "upright"):
            raise LaraUserError(f"--image_orientation must be auto, raw or upright, got {self.image_orientation!r}")


def _positional_to_flags(argv: list[str]) -> list[str]:
    """Allow `lara convert SRC DST [--flags]` as well as `--src SRC --dst DST`."""
    positional = []
    while argv and not argv[0].startswith("-") and len(positional) < 2:
        positional.append(argv.pop(0))
    return [f"--{name}={value}" for name, value in zip(("src", "dst"), positional)] + argv


def main(argv: list[str]) -> int:
    cfg = draccus.parse(ConvertConfig, args=_positional_to_flags(list(argv)), prog="lara convert")
    if not cfg.src or not cfg.dst:
        raise LaraUserError("usage: lara convert SRC DST [--keep_noops true] (SRC: LIBERO .hdf5 file or folder)")
    summary = convert_libero_hdf5(cfg.src, cfg.dst, cfg.keep_noops, cfg.image_orientation, cfg.mapping, cfg.repo_id)
    print(f"wrote {cfg.dst}: {summary}")
    return 0
