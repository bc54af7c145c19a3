"""The simulator layer: headless LIBERO environments (`libero_env`, `libero_setup`), the action and
observation protocol, start layouts, the scene's MuJoCo geometry (`scene_geometry`), the privileged
scripted expert (`scripted_expert`, `grasp_planning`), and closed-loop evaluation
(`evaluator`, `policies`, `rollouts`, `report`). Imports `lara` (the model) and `lara.utils` only.
"""
