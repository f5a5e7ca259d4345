"""orbax checkpoints of a training run: its arrays (parameters, optimizer state) and its progress (JSON).

Arrays are saved as they lie, sharded or replicated over a mesh, by every process of a multi-process run
together, and restored onto whatever shardings the restoring run asks for: a run saved on 4 devices resumes on
1 or 2. A checkpoint is written to a temporary directory and renamed when complete (orbax's atomic commit), so a
run killed at any moment, even while saving, leaves its earlier checkpoints intact and no partial one behind.

A checkpoint damaged afterwards (a truncated or missing file, garbage in its metadata, an emptied folder) raises
`CheckpointError` naming its step when restored, so that the run can fall back to an older one; checkpoints that
a resumed run would write again are moved to `workdir/checkpoints_set_aside` rather than deleted.
"""

import os
import pathlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from experiments.errors import RunError

CHECKPOINT_DIR = "checkpoints"
SET_ASIDE_DIR = "checkpoints_set_aside"
# What orbax raises reading a damaged checkpoint (orbax 0.12, tensorstore): ValueError for truncated or missing
# array data, a missing manifest or array metadata, and garbage JSON (json.JSONDecodeError); KeyError for a
# missing item (`state`, `progress`) or an empty step folder; OSError for files that cannot be read.
DAMAGE_ERRORS = (ValueError, KeyError, OSError)


class CheckpointError(RunError, ValueError):
    """A checkpoint that cannot be resumed (damaged, missing, or holding NaNs); the message names its step."""


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
        max_to_keep: how many of the newest checkpoints to keep, >= 1.

    Raises:
        ValueError: if `max_to_keep` is not an integer >= 1 (orbax would keep none, or fail on saving).
    """

    def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int):
        if isinstance(max_to_keep, bool) or not isinstance(max_to_keep, int) or max_to_keep < 1:
            raise ValueError(f"Checkpointer: `max_to_keep` must be an integer >= 1; got {max_to_keep!r}.")
        self.directory = pathlib.Path(workdir).absolute() / CHECKPOINT_DIR
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self._previous_unraisablehook = None

    def all_steps(self) -> list[int]:
        """The steps of the complete checkpoints, oldest first."""
        return sorted(self._manager.all_steps())

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

        Raises:
            CheckpointError: if the checkpoint cannot be read (one of `DAMAGE_ERRORS`); the message names the
                step and its folder, and the error orbax raised is its `__cause__`.
        """
        abstract = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=getattr(leaf, "sharding", None)), like
        )
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore())
            )
        except DAMAGE_ERRORS as error:
            self._hide_stray_callback_errors()
            reason = (str(error).strip().splitlines() or [""])[0][:300]
            raise CheckpointError(
                f"the checkpoint of step {step} ({self.directory / str(step)}) is damaged: cannot be read "
                f"({type(error).__name__}: {reason})"
            ) from error
        return restored["state"], restored["progress"]

    def set_aside(self, steps: Iterable[int]) -> list[pathlib.Path]:
        """Moves the checkpoints of `steps` out of the run, into `workdir/checkpoints_set_aside/<step>`.

        For checkpoints that a resumed run would write again (newer than the one it resumes from, or damaged):
        orbax does not write a step it already holds. Nothing is deleted; a folder of the same name already set
        aside is kept, the new one getting a suffix (``18.1``). In a multi-process run process 0 moves them
        and every process waits for it.

        Returns:
            The folders the checkpoints now lie in.
        """
        destination = self.directory.parent / SET_ASIDE_DIR
        moved = []
        for step in steps:
            target, suffix = destination / str(step), 0
            while target.exists():
                suffix += 1
                target = destination / f"{step}.{suffix}"
            moved.append(target)
            if jax.process_index() == 0:
                destination.mkdir(exist_ok=True)
                (self.directory / str(step)).rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("checkpoints set aside")
        self._manager.reload()
        return moved

    def close(self) -> None:
        """Waits for the saves in flight to be committed, then releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
        if self._previous_unraisablehook is not None and sys.unraisablehook is self._unraisablehook:
            sys.unraisablehook = self._previous_unraisablehook
        self._previous_unraisablehook = None

    def _hide_stray_callback_errors(self) -> None:
        # When orbax gives up reading a damaged checkpoint it closes its asyncio event loop while tensorstore
        # still has reads in flight; their callbacks then raise "Event loop is closed" in tensorstore's
        # threads, which Python prints as two tracebacks (through sys.unraisablehook) right after the error.
        # They say nothing the CheckpointError does not: hidden until `close`; anything else is still printed.
        if self._previous_unraisablehook is None:
            self._previous_unraisablehook = sys.unraisablehook
            sys.unraisablehook = self._unraisablehook

    def _unraisablehook(self, unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed":
            return
        (self._previous_unraisablehook or sys.__unraisablehook__)(unraisable)
