"""The data layer: episodes in and out, scripted demos, annotations, training samples. Imports
`envs` (collection and the `sim` annotator step the simulator), `lara` and `lara.utils`.

Modules (import the one you need; nothing heavy runs at package import):
- `episode`: the one in-memory `Episode` schema + `noop_mask`;
- `libero_hdf5`: official LIBERO HDF5 reader/writer;
- `lerobot_compat`: the only import path to lerobot's dataset code (torchvision-free);
- `key_mapping`: LeRobot column -> Episode mapping presets (`configs/data/*.yaml`);
- `lerobot_io`: LeRobot v3 reader/writer (image mode), simulator states in a `lara/` sidecar;
- `convert`: `lara convert --dataset SRC --out DIR` (the command: lara/scripts/convert_cli.py);
- `collect` / `collect_worker`: `lara collect` (the command: lara/scripts/collect_cli.py);
- `expert_recording`: the scripted expert's episode loop (collection and the `sim` annotator's truth);
- `stats`: normalization statistics stored with a dataset;
- `samples`: the training-sample `Dataset` and `collate_samples` (docs/interfaces.md);
- `replay`: `--policy replay`, a dataset's actions played back in the evaluator.
"""
