"""Parsing shared by the commands' options (click only, so any command may use it on the device)."""
import click


def comma_list(value, convert=str, error="expected a comma-separated list"):
    """'a, b,,c' -> [convert('a'), convert('b'), convert('c')]: blanks dropped; a value ``convert``
    rejects (ValueError) becomes click's usage error ``error``."""
    try:
        return [convert(item.strip()) for item in value.split(",") if item.strip()]
    except ValueError:
        raise click.BadParameter(error) from None
