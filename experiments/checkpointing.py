"""orbax checkpoints of a training run: its arrays (parameters, optimizer state) and its progress (JSON).

Arrays are saved as they lie, sharded or replicated over a mesh, by every process of a multi-process run
together, and restored onto whatever shardings the restoring run asks for: a run saved on 4 devices resumes on
1 or 2. A checkpoint is written to a temporary directory and renamed when complete (orbax's atomic commit), so a
run killed at any moment, even while saving, leaves its earlier checkpoints intact and no partial one behind.
"""

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"


def checkpoint_steps(workdir: str | os.PathLike) -> list[int]:
    """The steps of the complete checkpoints in `workdir` (without creating anything)."""
    directory = pathlib.Path(workdir) / CHECKPOINT_DIR
    if not directory.is_dir():
        return []
    return sorted(ocp.utils.checkpoint_steps(directory))


class Checkpointer:
    """Saves and restores `(state, progress)` pairs in `workdir/checkpoints/<step>`.

    `state` is a pytree of arrays; `progress` a JSON-serialisable dict (epoch, position, partial sums, ...).
    Saves run in the background; `close` waits for them.

    Args:
        workdir: the run's directory.
        max_to_keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int):
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(pathlib.Path(workdir).absolute() / CHECKPOINT_DIR, options=options)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None if there is none."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, progress: Mapping[str, Any]) -> None:
        """Starts saving a checkpoint for `step` in the background.

        Args:
            step: the checkpoint's step.
            state: a pytree of `jax.Array`s (or NumPy arrays). orbax copies them to host memory before `save`
                returns, so a training step may donate (reuse) their buffers right after.
            progress: a JSON-serialisable dict.
        """
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(dict(progress))),
        )

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """The `(state, progress)` saved at `step`.

        Args:
            step: the checkpoint's step.
            like: a pytree of arrays with the state's structure, shapes and dtypes; the restored arrays get their
                shardings (e.g. replicated over the current mesh), whatever the mesh that saved them.
        """
        abstract = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=getattr(leaf, "sharding", None)), like
        )
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore())
        )
        return restored["state"], restored["progress"]

    def close(self) -> None:
        """Waits for the saves in flight to be committed, then releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
