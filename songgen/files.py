"""Writing and reading files safely, for every writer and reader of songgen: atomic replacement
(a crash at any instant leaves the old file or the new one, never a torn one), appends that
never leave half a line, locks that hold on every OS (through `filelock`), a full disk named as
such, and reads that take only a regular file (the one guard every reader uses: a named pipe
or a device is refused at once, never waited on).

A full disk must surface as an OSError whatever wrote the bytes: PyTorch's zip writer swallows
the OSError of the file object it writes to and fails later with "unexpected pos", so the file
object handed to a writer here remembers the first error it raised, and that error is what
comes out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import filelock

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says that the disk (or the user's quota on it) has no room left."""
    return isinstance(exc, OSError) and exc.errno in _FULL


def reason(exc: OSError) -> str:
    """An OSError in words, without the file name (the caller names what it was writing)."""
    return exc.strerror or str(exc) or type(exc).__name__


# -- atomic replacement ------------------------------------------------------------------------

class _Sink:
    """The file a writer writes to: plain unbuffered writes, so that a full disk raises at the
    write that hit it; the first OSError is kept, because some writers (torch.save) swallow it."""

    def __init__(self, fd: int):
        self.fd = fd
        self.error: OSError | None = None

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.write(self.fd, view[done:])
        except OSError as exc:
            self.error = self.error or exc
            raise
        return done

    def flush(self) -> None:
        pass


def stage(path: str | Path, write: Callable[[BinaryIO], None], suffix: str = ".tmp",
          sync: bool = True) -> Path:
    """Call `write` on a new temporary file beside `path` and return its name (fsynced unless
    not `sync`), for `commit` to rename over `path`. On failure nothing is left behind; an
    OSError from writing is raised as it was, whatever `write` made of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    sink = _Sink(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it owner-only; use normal permissions
        try:
            write(sink)
        except Exception:
            if sink.error is not None:
                raise sink.error from None
            raise
        if sync:
            os.fsync(fd)
        fd = None
        os.close(sink.fd)  # a network file system may report a failed write only here
    except BaseException:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def commit(staged: list[tuple[Path, Path]], sync: bool = True) -> None:
    """Rename each staged temporary file over its target, in order (then fsync the folders, so
    that the renames themselves survive a crash). A rename takes no space on the disk."""
    for tmp, path in staged:
        os.replace(tmp, path)
    if sync:
        for folder in dict.fromkeys(Path(path).parent for _, path in staged):
            fsync_dir(folder)


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None],
                     suffix: str = ".tmp", sync: bool = True) -> None:
    """Call `write` on a temporary file beside `path`, fsync it, then rename it over `path`
    (and fsync the folder). On failure nothing but the old `path` remains. `sync=False` skips
    the fsyncs, for a file that is checked when read (a crash may then leave it torn, never
    half-renamed)."""
    path = Path(path)
    commit([(stage(path, write, suffix, sync), path)], sync)


def refuse_existing(path: str | Path) -> None:
    """songgen never overwrites a user's file: an output path where something is already (a
    file, a folder, a link even to nothing) is refused, in one sentence for every command."""
    from .errors import SonggenError

    if os.path.lexists(path):
        raise SonggenError(f"{path} already exists; choose a new name (songgen never overwrites "
                           "a file)")


def write_new(path: str | Path, data: bytes, sync: bool = True) -> None:
    """Write `data` to `path`, a new file, atomically; refused if `path` exists, also if it
    came to exist since the command checked it at its start."""
    from .errors import SonggenError

    refuse_existing(path)
    try:
        write_atomically(path, lambda f: f.write(data), sync=sync)
    except OSError as exc:
        raise SonggenError(f"cannot write {path}: {reason(exc)}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | Path) -> None:
    """Make renames in `folder` durable; not every platform can open a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading: only regular files, never through a link of songgen's own, never waiting on a pipe --

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
# What every reader says of a named pipe, a device or a socket where it wants a file.
NOT_REGULAR = "is not a regular file (a named pipe, a device or a socket)"


class NotRegularFile(OSError):
    """Something other than a regular file where songgen opens one: a symbolic link it does not
    follow, a named pipe, a device, a socket or a folder."""


def regular_file(path: str | Path, error: Callable[[str], Exception], missing: str, folder: str,
                 advice: str) -> Path:
    """`path`, where a regular file is; else `error` raised with the caller's words: `missing`
    where nothing is there, `folder` for a folder, and "PATH is not a regular file (...);
    `advice`" for anything else. Told by the path's status alone, before anything is opened:
    reading a named pipe or a device such as /dev/zero would wait forever or never end."""
    path = Path(path)
    if not path.exists():
        raise error(missing)
    if path.is_dir():
        raise error(folder)
    if not path.is_file():
        raise error(f"{path} {NOT_REGULAR}; {advice}")
    return path


def open_regular(path: str | Path, flags: int, mode: int = 0o666, follow: bool = False) -> int:
    """os.open for a file of songgen's own: a symbolic link is refused (not followed to
    wherever it points; `follow=True` for a file the user names, which may be a link), and a
    named pipe or device is refused at once instead of waiting for a writer. Raises
    NotRegularFile (its strerror says which) for both."""
    nofollow = 0 if follow else _NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | _NONBLOCK | getattr(os, "O_BINARY", 0), mode)
    except OSError as exc:
        if nofollow and exc.errno in (errno.ELOOP, errno.EMLINK):
            raise NotRegularFile(errno.ELOOP, "it is a symbolic link, not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "it is not a regular file (a named pipe, a "
                                               "device, a socket or a folder)")
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_regular(path: Path) -> None:
    """Raise OSError if something other than a regular file is at `path` (nothing is fine).
    By its status alone, so that nothing is created (filelock's fallback lock is the file's
    creation) and a pipe is never opened."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise OSError(errno.ELOOP, "it is a symbolic link, not a regular file")
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "it is not a regular file (a named pipe, a device, a socket "
                                    "or a folder)")


def read_regular(path: str | Path, follow: bool = False) -> bytes:
    """The bytes of a file of songgen's own (opened as `open_regular` does; `follow=True` for
    one the user names, which may be a link)."""
    with open(open_regular(path, os.O_RDONLY, follow=follow), "rb") as f:
        return f.read()


def append_line(path: str | Path, line: str) -> None:
    """Append `line` and a newline to a text file in one write; if that fails (a full disk),
    the file is cut back to what it held, so it never ends in half a line. A link or a pipe
    there is refused (OSError), never written through."""
    data = (line + "\n").encode("utf-8")
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # O_BINARY: no CRLF
    try:
        size = os.fstat(fd).st_size
        try:
            _Sink(fd).write(data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


# -- locks -------------------------------------------------------------------------------------

class Busy(Exception):
    """Another process holds the lock; `owner` is what it wrote in the lock file (if anything)."""

    def __init__(self, path: Path, owner: str | None):
        super().__init__(f"{path} is locked by {owner or 'another process'}")
        self.owner = owner


@contextlib.contextmanager
def exclusive(path: str | Path, wait: bool = True, note: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (made if missing) while in the block, on every
    OS. The OS drops it when the process dies, so a killed process never leaves it held.
    Without `wait`, raise Busy at once if another process holds it. `note`: write "pid N" in
    the file while holding it, for whoever wants to say who holds it; the file stays after."""
    path = Path(path)
    _check_regular(path)  # a link would be followed, a pipe would hang the lock's open
    owner = _owner(path) if not wait else None  # read first: some versions empty the file
    lock = filelock.FileLock(str(path), timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise Busy(path, owner or _owner(path)) from None
    except NotImplementedError:  # older filelock on a file system without locks
        raise OSError(errno.ENOSYS, "the file system there has no file locks") from None
    try:
        if note:
            _write_owner(path)
        yield
    finally:
        lock.release()


def _owner(path: Path) -> str | None:
    try:
        text = read_regular(path).decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    return text if text.startswith("pid ") else None


def _write_owner(path: Path) -> None:
    # Only over our own note or an empty file: where filelock keeps a marker of its own in the
    # file (its fallback without OS locks), that marker is left alone. Who holds the lock is
    # only information, so a file that cannot be written (Windows locks the bytes) is left.
    try:
        fd = open_regular(path, os.O_RDWR)
    except OSError:
        return
    try:
        text = os.read(fd, 64)
        if text and not text.startswith(b"pid "):
            return
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()}".encode())
    except OSError:
        pass
    finally:
        os.close(fd)
