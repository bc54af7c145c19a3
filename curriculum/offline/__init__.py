"""Offline validation of a checkpoint on a dataset's held-out split (training layer): action errors
(`evaluate`), what the latents encode (`probes`), the report (`report`) and `lara eval-offline`
(`config`, `cli`).
"""
