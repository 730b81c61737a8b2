"""A command's output folder: checked before any work, then held under an exclusive lock.

Checked first, so a bad ``--out`` (under a file, unwritable, a symlink loop) fails in a second,
not after an hour of training. Locked (``flock`` on LOCK_FILE inside it, released by the kernel
when the process ends, even by kill -9), so two processes never write one folder: two pipelines
on one folder deleted each other's temporary files, two converts both reported "ok" for files
the other replaced. Holding the lock, the command removes temporary files a killed run left.
"""
import contextlib
import errno
import os
from pathlib import Path

from .errors import MnistEdgeError
from .files import remove_stale_temps

LOCK_FILE = ".mnist-edge.lock"
_held = {}  # resolved folder -> [fd, depth]: a command invoked by the pipeline may claim its folder again


def check_output_folder(folder, option="--out"):
    """One-line error unless ``folder`` exists as a writable folder or can be created as one."""
    folder = Path(folder)
    try:
        os.stat(folder)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise MnistEdgeError(f"{option} {folder}: a symbolic link loop; point it at a real folder") from None
        if e.errno == errno.ENOTDIR:
            raise MnistEdgeError(f"{option} {folder}: {_file_above(folder)} is a file, so no folder can be made "
                                 f"under it; choose another path") from None
        if e.errno != errno.ENOENT:
            raise MnistEdgeError(f"{option} {folder}: cannot be used ({os.strerror(e.errno)})") from None
    existing = next((p for p in (folder, *folder.parents) if os.path.lexists(p)), Path("."))
    if not existing.is_dir():
        raise MnistEdgeError(f"{option} {folder}: {existing} is not a folder (a file or a broken link); "
                             f"choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MnistEdgeError(f"{option} {folder}: {existing} is not writable by this user; choose another path "
                             f"or fix its permissions")


def _file_above(folder):
    return next((p for p in reversed((folder, *folder.parents)) if os.path.isfile(p)), folder)


@contextlib.contextmanager
def claim_output(folder, option="--out"):
    """Check ``folder``, create it, hold its lock for the block and clean our stale temp files in it."""
    folder = Path(folder)
    check_output_folder(folder, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder.resolve()
    except OSError as e:
        raise MnistEdgeError(f"{option} {folder}: cannot create it ({os.strerror(e.errno or 0)})") from None
    if key in _held:
        _held[key][1] += 1
    else:
        _held[key] = [_lock(folder, option), 1]
        remove_stale_temps(folder)
    try:
        yield folder
    finally:
        _held[key][1] -= 1
        if not _held[key][1]:
            os.close(_held.pop(key)[0])  # closing the descriptor releases the lock


def _lock(folder, option):
    import fcntl  # POSIX only, as the devices this runs on

    path = folder / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise MnistEdgeError(f"{option} {folder}: cannot create {LOCK_FILE} ({os.strerror(e.errno or 0)})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise MnistEdgeError(f"{folder} is in use by another mnist-edge process (pid {owner}); wait for it "
                             f"to finish or choose another {option}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd
