"""Semantic-anchor backends: `sim` (exact, LIBERO), `instruction` (offline fallback), `vlm` (Qwen3-VL).

`make_backend(config)` builds one by name; heavy imports (MuJoCo, transformers) happen only in
the module of the backend that is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lara.utils.errors import LaraUserError

if TYPE_CHECKING:
    from data_pipeline.annotation.backends.base import SemanticBackend
    from data_pipeline.annotation.config import AnnotationConfig

BACKENDS: tuple[str, ...] = ("sim", "instruction", "vlm")


def make_backend(config: AnnotationConfig) -> SemanticBackend:
    """The backend named by `config.backend`; LaraUserError for an unknown name."""
    if config.backend == "instruction":
        from data_pipeline.annotation.backends.instruction import InstructionBackend

        return InstructionBackend(config)
    if config.backend == "sim":
        from data_pipeline.annotation.backends.sim import SimBackend

        return SimBackend(config)
    if config.backend == "vlm":
        from data_pipeline.annotation.backends.vlm import VlmBackend

        return VlmBackend(config)
    raise LaraUserError(
        f"unknown annotation backend {config.backend!r}; choose one of: {', '.join(BACKENDS)}"
    )
