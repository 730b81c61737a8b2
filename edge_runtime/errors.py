"""The one exception type users see.

It subclasses click's ClickException so every command prints ``Error: <message>`` and exits 1
without a traceback, while Python API users get an ordinary exception with the same message.
"""
import click


class MnistEdgeError(click.ClickException):
    """A problem with the user's input or environment, with a message that says how to fix it."""


def first_line(error, limit=300):
    """An exception's first non-empty line (its type name if it has none): TensorFlow, Keras and
    decoder errors run to pages, and a message here is one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:limit]
