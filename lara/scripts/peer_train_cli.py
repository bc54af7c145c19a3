"""`lara peer-train`: lerobot's Diffusion Policy trained on a `lara collect` dataset (the peer arm).

lara peer-train --dataset runs/generalization/data --out runs/peer/diffusion --budget_minutes 240
lara eval --config_path configs/eval/libero_object.yaml --policy peer:runs/peer/diffusion --out runs/peer/eval

The same command continues from the last checkpoint after a kill (a changed setting is refused);
the loss is logged to <out>/loss.jsonl. See benchmarks/peer/README.md.
"""

from __future__ import annotations

from lara.peer.train import PeerTrainConfig, train
from lara.utils.config_parsing import parse_config
from lara.utils.run_lock import run_lock


def main(argv: list[str]) -> int:
    cfg = parse_config(PeerTrainConfig, argv, prog="lara peer-train")
    with run_lock(cfg.out, "lara peer-train"):
        meta = train(cfg)
    print(
        f"{cfg.out}: step {meta['step']}, {meta['train_seconds'] / 60:.1f} min trained; "
        f"evaluate with: lara eval --policy peer:{cfg.out}"
    )
    return 0
