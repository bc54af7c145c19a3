"""`lara convert --dataset SRC --out DIR`: LIBERO HDF5 file/folder -> LeRobot v3 dataset (thin main
over `convert_libero_hdf5`; flags are the fields of `ConvertConfig`, parsed by `parse_config`)."""

from __future__ import annotations

from dataclasses import dataclass

from data_pipeline.convert import convert_libero_hdf5
from lara.utils.config_parsing import parse_config
from lara.utils.errors import LaraUserError

ORIENTATIONS = ("auto", "raw", "upright")


@dataclass
class ConvertConfig:
    dataset: str = ""  # the LIBERO dataset to convert: a .hdf5 file or a folder of them
    out: str = ""  # output LeRobot dataset folder (must not exist)
    keep_noops: bool = False  # keep no-op frames (default: drop them, the `no_noops` convention)
    image_orientation: str = "auto"  # auto (from the file's attribute) | raw (flip) | upright (keep)
    mapping: str = "libero"  # key-mapping preset the dataset is written with (configs/data/)
    repo_id: str = "lara/converted"

    def __post_init__(self) -> None:
        if not self.dataset or not self.out:
            raise LaraUserError(
                "give --dataset (a LIBERO .hdf5 file or folder) and --out (the LeRobot dataset to write)"
            )
        if self.image_orientation not in ORIENTATIONS:
            raise LaraUserError(
                f"--image_orientation must be one of {', '.join(ORIENTATIONS)}, "
                f"got {self.image_orientation!r}"
            )


def main(argv: list[str]) -> int:
    cfg = parse_config(ConvertConfig, argv, prog="lara convert")
    summary = convert_libero_hdf5(
        cfg.dataset, cfg.out, cfg.keep_noops, cfg.image_orientation, cfg.mapping, cfg.repo_id
    )
    print(f"wrote {cfg.out}: {summary}")
    return 0
