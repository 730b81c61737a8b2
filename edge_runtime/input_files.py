"""Opening the files a user names (models, pictures, arrays): regular files only, of bounded size.

A FIFO, a terminal or ``/dev/zero`` given as a model or picture would block forever or fill memory,
so a path is opened without blocking (``O_NONBLOCK``: a FIFO with no writer opens at once), checked
with ``fstat`` on that same descriptor (no race with a rename), and refused unless it is a regular
file of at most ``max_bytes``. Every refusal is one MnistEdgeError naming the file.
"""
import errno
import os
import stat

from .errors import MnistEdgeError

MAX_MODEL_BYTES = 512 << 20   # a .tflite file; the toolkit's are ~100-250 KB, large vision models ~100 MB
MAX_PICTURE_BYTES = 256 << 20  # an image file; the decoded size is capped separately (images.MAX_PIXELS)
MAX_ARRAY_BYTES = 4 << 30     # a .npy/.npz file; the arrays inside are capped by their headers


def shown(path):
    """A file name safe for one output line: control characters (newlines...) escaped as in repr."""
    text = os.fspath(path)
    text = text if isinstance(text, str) else os.fsdecode(text)
    return text if text.isprintable() else repr(text)[1:-1]


def open_regular(path, what="file", max_bytes=None):
    """A binary file object for ``path`` once it is a regular file (of at most ``max_bytes``)."""
    name = shown(path)
    if os.fspath(path) in ("", b""):
        raise MnistEdgeError(f"empty file name given for the {what}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise MnistEdgeError(f"{name}: {_reason(e, what)}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise MnistEdgeError(f"{name}: is a folder, expected a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise MnistEdgeError(f"{name}: not a regular file ({_kind(info.st_mode)}); expected a {what}")
        if max_bytes is not None and info.st_size > max_bytes:
            raise MnistEdgeError(f"{name}: {info.st_size / 2**20:.0f} MiB is more than a {what} may have "
                                 f"({max_bytes / 2**20:.0f} MiB)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, what="file", max_bytes=None):
    """The bytes of a regular file, read once, never more than ``max_bytes`` (it may grow meanwhile)."""
    with open_regular(path, what, max_bytes) as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise MnistEdgeError(f"{shown(path)}: grew past {max_bytes / 2**20:.0f} MiB while being read")
    return data


def _reason(error, what):
    if error.errno == errno.ENOENT:
        return "no such file"
    if error.errno == errno.ELOOP:
        return "symbolic link loop (the link points back at itself)"
    if error.errno == errno.EACCES:
        return "permission denied"
    return f"cannot open ({error.strerror or error})"


def _kind(mode):
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a file"
