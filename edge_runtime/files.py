"""Atomic file writes: a reader never sees a half-written file, and a failure leaves the old one.

Every temporary file or folder the toolkit makes carries TEMP_TAG in its name, so one killed by
kill -9 (no ``finally`` runs) is recognisably ours and removed by ``remove_stale_temps`` when the
next command takes the folder's lock (edge_runtime/output_folder.py).
"""
import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path

from .errors import MnistEdgeError

TEMP_TAG = ".mnist-edge-tmp-"  # in every temporary name: ".<target name>.mnist-edge-tmp-<random><suffix>"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _read_umask():
    """The process umask, read without changing it (Linux /proc), else by the set-and-restore dance
    once, at import, before any thread of ours runs."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_read_umask()  # what open() would give a new file; mkstemp makes 0600


def temp_name(path):
    return f".{Path(path).name}{TEMP_TAG}"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; if the block succeeds, flush it to disk and rename it
    onto ``path`` (then flush the folder, so the rename survives a power cut too)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_name(path), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        with disk_errors(path):
            yield Path(tmp)
            os.chmod(tmp, FILE_MODE)
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def disk_errors(path):
    """A full disk (or quota) while writing ``path`` becomes a one-line error; others pass through."""
    try:
        yield
    except OSError as e:
        if e.errno in _FULL:
            raise MnistEdgeError(f"{path}: no space left on the device while writing it; free some space and "
                                 f"run again (nothing was replaced)") from None
        raise


def fsync_path(path):
    """fsync a file or a folder by name (folders: where the OS allows it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EBADF):  # some file systems cannot sync a folder
            raise
    finally:
        os.close(fd)


def remove_stale_temps(folder):
    """Delete temporary files and folders of ours that a killed process left in ``folder``.

    Only safe while holding the folder's lock: then no live process of ours writes there.
    """
    for entry in Path(folder).iterdir():
        if entry.name.startswith(".") and TEMP_TAG in entry.name:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def write_bytes_atomic(path, data: bytes):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path, text: str):
    write_bytes_atomic(path, text.encode("utf-8"))
