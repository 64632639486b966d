"""How a command body runs: PyTorch imported without letting Ctrl-C cut the import short,
library errors turned into one-line `Error:` messages with exit codes, and the few things a
torchrun worker does differently (which process speaks, how to resume).
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
import warnings

import click

from .errors import SonggenError, SonggenWarning, TrainingInterrupted


def _show_warning(message, category, filename, lineno, file=None, line=None):
    if issubclass(category, SonggenWarning):
        from tqdm import tqdm

        tqdm.write(f"Warning: {message}", file=sys.stderr)  # above a progress bar, not into it
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


# The command line's own advice for some library errors, naming its options.
_HINTS = {
    "existing-run": "add --resume to continue it, or give --checkpoint-dir a new folder",
    "skip-unknown": "add --skip-unknown to score the rest",
    "resume-or-init": "use --resume or --init-from, not both",
}


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
                click.echo(f"To continue: {_resume_command()}", err=True)
            sys.exit(128 + exc.signum)
        except SonggenError as exc:
            if exc.silent:  # another process of a distributed run has reported it
                sys.exit(1)
            hint = _HINTS.get(exc.hint)
            message = f"{exc.what}; {hint}" if hint else str(exc)
            raise click.ClickException(_process_prefix() + message) from None
        except KeyboardInterrupt:
            if not _process_prefix():  # under torchrun, process 0 says it for all
                click.echo("Interrupted.", err=True)
            sys.exit(130)
        finally:
            warnings.showwarning = _default_showwarning

    return wrapper


def under_torchrun() -> bool:
    """A worker of a distributed run of several processes (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _process_prefix() -> str:
    """Under torchrun, errors of processes other than the first say which process they are."""
    rank = os.environ.get("RANK", "0")
    return f"process {rank}: " if under_torchrun() and rank != "0" else ""


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
    if under_torchrun():
        launcher = ["torchrun", "--standalone", "--nproc-per-node",
                    os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]), "-m", "songgen"]
    return shlex.join([*launcher, *argv, "--resume"])
