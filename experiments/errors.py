"""The errors a run reports to its user in one line, without a traceback: what went wrong and what to do.

`RunError` is their base. The command lines (`experiments/main.py`, `experiments/torch_reference.py`) turn them,
and the built-in errors a user can fix (a full disk, ...), into that line and an exit status with
`exit_on_user_errors`, and a --config override that names no field with `exit_on_config_flag_errors`.
"""

import contextlib
import errno
import os
import re
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
        SystemExit: for the errors above: its `code` is the line when the status is 1 (Python prints it as it
            exits), else the status (the line is printed first).
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
    line = f"error: {' '.join(message.splitlines())}"
    if code == 1:
        sys.exit(line)  # Python prints it on stderr and exits with status 1; `SystemExit` holds it for callers
    print(line, file=sys.stderr)
    sys.exit(code)


@contextlib.contextmanager
def exit_on_config_flag_errors() -> Iterator[None]:
    """Exits with one line for an error ml_collections raises while it reads --config and its overrides.

    Such as an override that names no field (``--config.batch_sze=8``), which ml_collections raises as an
    AttributeError or KeyError, with a traceback: while `experiments.cli` defines --config (with the default file)
    or while absl parses the flags (with ``--config=file``). Put both, the import of `experiments.cli` and
    `experiments.cli.run`, in this block. Errors that do not come from ml_collections' `config_flags` propagate.

    Raises:
        SystemExit: ``error: --config.batch_sze names no field of the config; did you mean --config.batch_size?``
            (exit status 1).
    """
    try:
        yield
    except Exception as error:
        if not _raised_by_config_flags(error):
            raise
        sys.exit(f"error: {_config_flag_message(error, sys.argv)}")  # printed on stderr; exit status 1


def _raised_by_config_flags(error: BaseException) -> bool:
    """Whether `error` comes from ml_collections' --config flag (a frame of its `config_flags` on the way)."""
    traceback = error.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith("ml_collections.config_flags"):
            return True
        traceback = traceback.tb_next
    return False


def _config_flag_message(error: BaseException, argv: list[str]) -> str:
    """`error`, raised by ml_collections while it applied the --config.<field> overrides of `argv`, in one line."""
    text = error
    while isinstance(text, BaseException) and text.args:  # AttributeError(KeyError(message))
        text = text.args[0]
    message = str(text)
    overrides = [match[1] for arg in argv if (match := re.match(r"--?(?:no)?config\.([^=]+)", arg))]
    # ml_collections names the missing key ('batch_sze'), or for a field of a number the whole path.
    lookup = re.search(r"Attempting to lookup: (\S+)", message)
    key = lookup[1] if lookup else message.splitlines()[0].strip("'\"") if message else ""
    field = next((name for name in overrides if key and (name == key or name.endswith(f".{key}"))), None)
    if field is None:
        return f"--config: {' '.join(message.split())}"
    suggestion = re.search(r'Did you mean "([^"]+)"', message)
    parent = field.rpartition(".")[0]
    hint = f"; did you mean --config.{parent + '.' if parent else ''}{suggestion[1]}?" if suggestion else ""
    return f"--config.{field} names no field of the config{hint}"
