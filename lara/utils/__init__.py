"""Shared utilities, the bottom layer: user errors (`errors`), atomic writes (`atomic`), crash-safe
JSON lines (`jsonl`), typed config parsing (`config_parsing`), registries (`registry`) and the
worker-process guard (`process_guard`). Imports no other first-party package.
"""
