"""Offline validation of a checkpoint on a dataset's held-out split (training layer): action errors
(`evaluate`), what the latents encode (`probes`), the report (`report`) and `lara eval-offline`
(`config`; the command is lara/scripts/eval_offline_cli.py); `lara probe`, what each latent and
`<img_next>` slot holds against controls (`probe_run`, `probe_features`, `probe_fit`,
`probe_report`, `probe_config`).
"""
