"""The one exception type users see.

It subclasses click's ClickException so every command prints ``Error: <message>`` and exits 1
without a traceback, while Python API users get an ordinary exception with the same message.
"""
import click


class MnistEdgeError(click.ClickException):
    """A problem with the user's input or environment, with a message that says how to fix it."""
