"""The errors a run reports to its user in one line, without a traceback: what went wrong and what to do."""

import contextlib
import errno
import os
import sys
from collections.abc import Iterator


class RunError(Exception):
    """An error the user can fix (data, config, workdir, checkpoint, devices): `main.py` prints the message alone.

    Modules raise subclasses that also derive from the matching built-in error (e.g. ``class
    ConfigError(RunError, ValueError)``), so that callers of the library functions can catch either.

    The command lines (`experiments/main.py`, `experiments/torch_reference.py`, through `exit_on_user_errors`)
    print ``error: <message>`` on stderr and exit with the error's `exit_code`: 1 unless a subclass sets another,
    as an interrupted run does (130 after Ctrl-C, 143 after SIGTERM: the statuses of a process killed by SIGINT
    and SIGTERM, 128 + the signal's number, as a shell reports them).
    """

    exit_code: int = 1
    """The process's exit status when a command line stops on this error."""


@contextlib.contextmanager
def exit_on_user_errors(workdir: str | os.PathLike | None, *, resumable: bool) -> Iterator[None]:
    """Turns an error the user can fix into one line on stderr and an exit; any other error keeps its traceback.

    The line is ``error: <message>`` (newlines in the message become spaces), and the exit status
    `RunError.exit_code` (1 for the built-in errors). Caught:

    * every `RunError`;
    * `FileExistsError` and `FloatingPointError`, as the trainers raise them (a run already in the workdir; a
      NaN or infinite loss);
    * `OSError`s from the operating system (those with an `errno`): a full disk (`ENOSPC`) names the file, or
      else the workdir, and says that the disk is full; the others give their reason and path.

    Args:
        workdir: the run's directory, named when a full disk's error does not name the file.
        resumable: whether the run can continue with ``--resume`` (the JAX trainer's), which the message after
            a full disk then suggests.

    Raises:
        SystemExit: for the errors above.
    """
    try:
        yield
    except RunError as error:
        _exit(str(error), error.exit_code)
    except (FileExistsError, FloatingPointError) as error:
        _exit(str(error), 1)
    except OSError as error:
        if error.errno is None:  # not the system's: a library's message, or a bug
            raise
        _exit(_os_error_message(error, workdir, resumable=resumable), 1)


def _os_error_message(error: OSError, workdir: str | os.PathLike | None, *, resumable: bool) -> str:
    """The one-line message of an `OSError` from the system, e.g. ``the disk is full: no space left ...``."""
    path = error.filename if error.filename is not None else workdir
    if error.errno == errno.ENOSPC:
        where = f"to write {error.filename}" if error.filename is not None else f"to write in {workdir}"
        then = "continue the run with --resume" if resumable else "run again with a new --workdir"
        return f"the disk is full: no space left on the device {where}. Free some space, then {then}."
    reason = error.strerror or (os.strerror(error.errno) if error.errno is not None else str(error))
    return f"{reason}: {path}" if path is not None else reason


def _exit(message: str, code: int) -> None:
    print(f"error: {' '.join(message.splitlines())}", file=sys.stderr)
    sys.exit(code)
