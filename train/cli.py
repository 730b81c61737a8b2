"""The ``mnist-edge`` command: one click group whose verbs load lazily.

Each verb lives beside the code it drives and is imported only when used, so ``--help`` and
``infer`` never pay for TensorFlow. The group lives in ``train`` because ``pipeline`` chains every
stage, and only the workstation side may depend on all the others.
"""
import importlib

import click

from edge_runtime import __version__

# verb -> "module:attribute", in the order a user runs them
COMMANDS = {
    "data": "train.data_command:data_command",
    "train": "train.train_command:train_command",
    "convert": "convert.cli:convert_command",
    "infer": "edge_runtime.cli:infer_command",
    "bench": "benchmarks.cli:bench_command",
    "pipeline": "train.pipeline:pipeline_command",
}


class LazyGroup(click.Group):
    """A group that imports a verb's module only when that verb is asked for (click's recipe)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mnist-edge")
def main():
    """Multi-label digit recognition from training to int8 TensorFlow Lite on small devices.

    \b
    Right after install (no MNIST needed):
      mnist-edge infer --example       # the shipped model on the shipped example pictures
      mnist-edge bench                 # demo: shipped float32 vs int8 on the shipped sample
    Typical flow:
      mnist-edge data data/            # compose the multi-label MNIST data set
      mnist-edge train --data data/ --out runs/default
      mnist-edge convert runs/default --out models/
      mnist-edge bench models/model_float32.tflite models/model_int8.tflite --data data/test.npz
      mnist-edge infer photo.png       # uses the int8 model shipped with the package
    Or all but the last in one go:  mnist-edge pipeline --out runs/pipeline
    """
