"""Applications, the top layer: the `lara` command (`cli`) and what only it runs (the pipeline,
the demo and its report, evaluation and RL entry points, latency benchmarks). Nothing imports it
(lerobot's `scripts/`); everything it needs lives in a lower layer.
"""
