"""The run folder ``mnist-edge train --out`` writes: its file names and its checkpoint state.

Shared by the command (which checks a folder before training) and the trainer (which fills it),
without TensorFlow.
"""
import json
from pathlib import Path

from edge_runtime.errors import MnistEdgeError

# Inside RUN_DIR
MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
HISTORY_FILE = "history.csv"
CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"  # in CHECKPOINT_DIR; replaced last, so it always names complete files


def read_state(run_dir):
    """The last committed checkpoint state of RUN_DIR, or None if it has none."""
    path = Path(run_dir) / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MnistEdgeError(f"{path}: unreadable checkpoint state ({e}); delete {path.parent} to start over") from None

