"""Benchmark: training samples per second from a DataLoader (2 workers, 128 px) over a LeRobot dataset.

Usage: python benchmarks/data_samples.py DATASET [--workers 2] [--batch-size 32] [--image-size 128]
Iterates the whole dataset (shuffled) for `--epochs` after one warm-up batch and reports samples/s.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from data_pipeline.samples import LaraSampleDataset, SampleConfig, collate_samples

    t0 = time.perf_counter()
    ds = LaraSampleDataset(args.dataset, SampleConfig(image_size=args.image_size))
    init_s = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=collate_samples,
        persistent_workers=args.workers > 0,
    )
    next(iter(loader))  # warm-up: worker start-up and first batch
    n, start = 0, time.perf_counter()
    for _ in range(args.epochs):
        for batch in loader:
            n += batch["action"].shape[0]
    secs = time.perf_counter() - start
    print(
        json.dumps(
            {
                "dataset": args.dataset,
                "frames": len(ds),
                "workers": args.workers,
                "batch_size": args.batch_size,
                "image_size": args.image_size,
                "samples": n,
                "seconds": round(secs, 2),
                "samples_per_s": round(n / secs, 1),
                "init_s": round(init_s, 2),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
