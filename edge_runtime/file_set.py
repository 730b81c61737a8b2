"""Sets of files published as a unit, so no reader ever takes a mix of two runs for one set.

A command writes its whole set (the data set's splits and dataset.json; convert's models; bench's
reports) into a staging folder beside the target, and only when every file is complete moves them
in. The moves are renames, fast but not one atomic step, so a marker file (PUBLISHING) is written
first and removed last: a kill between two renames leaves the marker, and readers refuse the
folder until a command publishes there again. The data set's dataset.json also lists each file's
SHA-256 (``MANIFEST_KEY``), checked when a split is read, which catches a file copied in by hand.
"""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import MnistEdgeError
from .files import TEMP_TAG, disk_errors, fsync_path, write_text_atomic

PUBLISHING = ".mnist-edge-publishing"  # present while a set is being moved in
MANIFEST = "dataset.json"              # beside data set files: lists their hashes under MANIFEST_KEY
MANIFEST_KEY = "files"


@contextlib.contextmanager
def staged_set(folder):
    """Yield an empty staging folder; when the block succeeds, move everything in it into ``folder``.

    A failure (or kill) inside the block leaves ``folder`` exactly as it was.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".stage{TEMP_TAG}", dir=folder))
    try:
        with disk_errors(folder):
            yield stage
            _publish(stage, folder)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _publish(stage, folder):
    names = sorted(p.name for p in stage.iterdir())
    for name in names:
        fsync_path(stage / name)  # on disk before the renames that publish them
    # The manifest, if any, moves last: until then the old one still describes the old files.
    names.sort(key=lambda name: name == MANIFEST)
    write_text_atomic(folder / PUBLISHING, json.dumps({"pid": os.getpid(), "files": names}) + "\n")
    for name in names:
        os.replace(stage / name, folder / name)
    fsync_path(folder)
    (folder / PUBLISHING).unlink()
    fsync_path(folder)


def check_complete(folder, what="folder"):
    """Refuse a folder whose last publication was cut off (its files may come from two runs)."""
    if os.path.lexists(Path(folder) / PUBLISHING):  # never raises: an unreadable folder is reported by its reader
        raise MnistEdgeError(f"{folder}: an mnist-edge process stopped while replacing the files of this {what}, "
                             f"so they may come from two different runs; run the command that wrote it again")


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_listed(path):
    """If ``path`` is listed in the manifest beside it, require the listed SHA-256.

    A file with no manifest, or a manifest without hashes (written before they existed), passes.
    """
    path = Path(path)
    check_complete(path.parent, "data set")
    try:
        listed = json.loads((path.parent / MANIFEST).read_text(encoding="utf-8")).get(MANIFEST_KEY) or {}
    except (OSError, ValueError, AttributeError):
        return  # no manifest (a hand-made set); a broken one is reported by whoever reads it
    expected = listed.get(path.name) if isinstance(listed, dict) else None
    if expected and sha256_file(path) != expected:
        raise MnistEdgeError(f"{path}: not the file {path.parent / MANIFEST} lists (other SHA-256): it comes from "
                             "another composition than the rest of the set; write the set again with `mnist-edge data`")
