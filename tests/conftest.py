"""Shared test set-up: offline, quiet, and a per-session cache so tests never touch ~/.cache."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
