"""The LaRA policy (model layer): configuration, backbone, latent CoT, `<img_next>` foresight, the DiT
action expert, tokenizers, normalization; the core model (`model`), its inference engine
(`generation`), pre/post-processing (`processor`) and the policy with its action queue
(`modeling_lara`). Imports only `lara.utils`.

Layers, bottom to top (imports point down only; `tests/test_layering.py` checks every import):
`lara.utils` (shared utilities) -> `lara` (the model) -> `envs` (LIBERO simulator, closed-loop
evaluation) -> `data_pipeline` (datasets, collection, annotation) -> `curriculum` (training, offline
validation, RL) -> `lara.scripts` (the `lara` command and its applications; nothing imports it).
"""
