"""How a command body runs: library errors as one `Error: ...` line with an exit code (and the
command line's own advice added to the library's), warnings above the progress bar, Ctrl-C and
a closed pipe, the resume command told after an interrupted run, and the few things a torchrun
worker does differently."""

from __future__ import annotations

import functools
import os
import shlex
import sys
import warnings

import click

from ..config import launched_distributed
from ..errors import SonggenError, SonggenWarning, TrainingInterrupted

# -- how a command body runs --------------------------------------------------------------

def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, SonggenWarning):
        from tqdm import tqdm

        tqdm.write(f"Warning: {message}", file=sys.stderr)  # above a progress bar, not into it
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def library_call(func):
    """Run a command body with library errors mapped to `Error: ...` and exit codes."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        warnings.showwarning = _show_warning
        try:
            _import_torch_uninterrupted()
            return func(*args, **kwargs)
        except TrainingInterrupted as exc:
            if not exc.silent:
                click.echo(str(exc), err=True)
                if exc.resumable:
                    click.echo(f"To continue: {_resume_command()}", err=True)
            sys.exit(128 + exc.signum)
        except SonggenError as exc:
            if exc.silent:  # another process of a distributed run has reported it
                sys.exit(1)
            raise click.ClickException(process_prefix() + _with_flags(exc)) from None
        except BrokenPipeError:
            # The reader closed the pipe (`songgen sample | head -1`): its choice, not an error.
            # Nothing more goes to stdout, not even the interpreter's flush at exit.
            _stdout_to_devnull()
            sys.exit(0)
        except KeyboardInterrupt:
            if not process_prefix():  # under torchrun, process 0 says it for all
                click.echo("Interrupted.", err=True)
            sys.exit(130)
        finally:
            warnings.showwarning = _default_showwarning

    return wrapper


def _with_flags(exc: SonggenError) -> str:
    """The message of a library error, with the command line's own advice where it has some."""
    from ..text.reading import AUTO, FALLBACK, BadEncoding, WrongEncoding
    from ..training.team import UnusableDevice

    if isinstance(exc, UnusableDevice):
        return f"{exc.what}; use --device {exc.use}{exc.rest}"
    if isinstance(exc, WrongEncoding):
        return (f"{exc.what}; use --encoding {exc.fits}, or --encoding {AUTO} to read each "
                f"file in its own encoding (UTF-8, else {FALLBACK})")
    if isinstance(exc, BadEncoding):
        if exc.encoding == "utf-8":
            return (f"{exc.what}; save the file as UTF-8, or give its encoding with --encoding, "
                    "e.g. --encoding cp1252")
        return f"{exc.what}; give the file's real encoding with --encoding, or save it as UTF-8"
    return str(exc)


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test runner's stream)
        pass


def process_prefix() -> str:
    """Under torchrun, errors of processes other than the first say which process they are."""
    rank = os.environ.get("RANK", "0")
    return f"process {rank}: " if launched_distributed() and rank != "0" else ""


def _import_torch_uninterrupted() -> None:
    """Import PyTorch (a second or so) with Ctrl-C held back until it is done: an import cut
    short leaves half-initialised modules behind that fail later in confusing ways."""
    import importlib
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        importlib.import_module("torch")  # signal handlers belong to the main thread
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        importlib.import_module("torch")
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _resume_command() -> str:
    """The command line that was run, as a resume: --init-from only applies to the start."""
    argv, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--resume" or arg.startswith("--init-from="):
            skip = False
            continue
        if arg == "--init-from":
            skip = True
            continue
        argv.append(arg)
    launcher = ["songgen"]
    if launched_distributed():
        launcher = ["torchrun", "--standalone", "--nproc-per-node",
                    os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]), "-m", "songgen"]
    return shlex.join([*launcher, *argv, "--resume"])
