"""The one place the peer arm imports lerobot's Diffusion Policy (lerobot 0.4.4, its real code).

A plain `import lerobot.policies.diffusion.modeling_diffusion` fails here, for three reasons, each
isolated below only for the duration of the import:
1. `lerobot/policies/__init__.py` imports every policy's config, and the GR00T one
   (`policies/groot/groot_n1.py`) raises at import with transformers 5.x ("non-default argument
   'backbone_cfg' follows default argument"). We register `lerobot.policies` as a bare package
   (its real folder, its `__init__` not run), so only the diffusion modules and what they import
   load. `lerobot.policies` stays registered that way: `lerobot.policies.factory` and the other
   policies are unavailable in this process (nothing of ours uses them).
2. torchvision is not installable next to torch 2.13 on CPU (docs/platform.md): `lara.peer.torchvision_shim`
   stands in for the four names the diffusion code needs (ResNet from torchvision's own source).
3. `lerobot.policies.pretrained` -> `lerobot.configs.train` -> `lerobot.envs` -> `lerobot.robots` ->
   `lerobot.motors` imports pyserial (`serial`) for real motor buses. No serial port is ever opened
   here: an empty `serial` module is enough for the import.
`lerobot.processor.tokenizer_processor` imports transformers' `AutoProcessor`/`AutoTokenizer`, whose
import decides (and caches) whether torchvision is available: they are imported before the stand-ins
are registered, so transformers decides without them. The stand-ins leave sys.modules right after
the import (lerobot's modules keep their own references), so transformers and everything else still
see no torchvision and no serial.

The policy, its config and its pre/post-processors (normalization from dataset stats) are lerobot's:
`DiffusionConfig`, `DiffusionPolicy`, `make_diffusion_pre_post_processors`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

import data_pipeline.lerobot_compat  # noqa: F401  (lerobot's dataset modules, with their own ToTensor shim)
from lara.peer import torchvision_shim


def _bare_package(name: str, folder: str) -> types.ModuleType:
    module = types.ModuleType(name, doc="lerobot.policies without its __init__ (lara.peer.lerobot_diffusion)")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__spec__.submodule_search_locations = [folder]
    module.__path__ = [folder]  # type: ignore[attr-defined]
    return module


def _import_diffusion() -> tuple[types.ModuleType, types.ModuleType, types.ModuleType]:
    names = (
        "lerobot.policies.diffusion.configuration_diffusion",
        "lerobot.policies.diffusion.modeling_diffusion",
        "lerobot.policies.diffusion.processor_diffusion",
    )
    if all(name in sys.modules for name in names):
        return tuple(sys.modules[name] for name in names)  # type: ignore[return-value]
    import lerobot

    if "lerobot.policies" not in sys.modules:
        sys.modules["lerobot.policies"] = _bare_package("lerobot.policies", f"{lerobot.__path__[0]}/policies")
    from transformers import AutoProcessor, AutoTokenizer  # noqa: F401  (before the stand-ins: see above)

    stand_ins = dict(torchvision_shim.make_modules())
    if importlib.util.find_spec("serial") is None:
        serial = types.ModuleType("serial", doc="empty stand-in for pyserial (lara.peer.lerobot_diffusion)")
        serial.__spec__ = importlib.machinery.ModuleSpec("serial", None)
        stand_ins["serial"] = serial
    shadowed = {name: sys.modules[name] for name in stand_ins if name in sys.modules}
    sys.modules.update(stand_ins)
    try:
        return tuple(importlib.import_module(name) for name in names)  # type: ignore[return-value]
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        sys.modules.update(shadowed)


_configuration, _modeling, _processor = _import_diffusion()

DiffusionConfig = _configuration.DiffusionConfig
DiffusionPolicy = _modeling.DiffusionPolicy
make_diffusion_pre_post_processors = _processor.make_diffusion_pre_post_processors

__all__ = ["DiffusionConfig", "DiffusionPolicy", "make_diffusion_pre_post_processors"]
