"""The simulator layer: headless LIBERO environments (`libero_env`, `libero_setup`), the action and
observation protocol, start layouts, the privileged scripted expert, and closed-loop evaluation
(`evaluator`, `policies`, `rollouts`, `report`). Imports `lara` (the model) and `lara.utils` only.
"""
