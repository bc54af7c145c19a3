"""Peer policies: standard policies from outside the project, trained on the same demos and scored
by the same `lara eval` protocol, to anchor LaRA's success tables. Today lerobot's Diffusion Policy
(`lara.peer.lerobot_diffusion` imports it beside transformers 5 without torchvision). Its layer sits
between training and the applications: it reads datasets (data) and adapts `envs.protocol`
observations (simulator); only `lara.scripts` imports it."""
