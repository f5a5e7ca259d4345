"""JAX's persistent compilation cache for the trainers: a repeated run loads its compiled steps from disk."""

import os
import pathlib

import jax

DEFAULT_DIR = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "jaxloss" / "xla"
"""Where `main.py` keeps compiled programs unless told otherwise: ``$XDG_CACHE_HOME/jaxloss/xla``."""


def enable(directory: str | os.PathLike) -> None:
    """Caches every compiled program of this process in `directory` (created if missing), and reuses them.

    JAX caches only compilations longer than a second by default; Tudui's steps compile in less on a fast
    machine, and loading one is still about 10x quicker than compiling it, so every program is cached. A
    cached program is keyed by the computation, the jaxlib version, the devices and the compiler options, so a
    stale entry is never used; the cache can be deleted at any time.
    """
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
