"""Parsing shared by the commands' options (click only, so any command may use it on the device)."""
import math

import click


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf: every range comparison with nan is False, so
    FloatRange lets it through (``--lr nan`` trained NaN weights and exited 0)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def comma_list(value, convert=str, error="expected a comma-separated list"):
    """'a, b,,c' -> [convert('a'), convert('b'), convert('c')]: blanks dropped; a value ``convert``
    rejects (ValueError) becomes click's usage error ``error``."""
    try:
        return [convert(item.strip()) for item in value.split(",") if item.strip()]
    except ValueError:
        raise click.BadParameter(error) from None


def choice_list(choices):
    """A click callback for 'a,b' options whose items must be among ``choices``: a de-duplicated tuple."""
    def parse(ctx, param, value):
        names = comma_list(value)
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise click.BadParameter(f"{', '.join(unknown) or 'nothing given'}; choose from {', '.join(choices)}")
        return tuple(dict.fromkeys(names))
    return parse


class NumberPair(click.ParamType):
    """A,B -> [a, b] (a list, as JSON stores it), finite. A type, not a callback, so that defaults
    convert too when the pipeline invokes a command."""

    def __init__(self, name="LOW,HIGH", example="0.6,1.2"):
        self.name, self.example = name, example

    def convert(self, value, param, ctx):
        try:
            a, b = (float(v) for v in (value if isinstance(value, (list, tuple)) else value.split(",")))
        except ValueError:
            self.fail(f"expected {self.name}, e.g. {self.example}", param, ctx)
        if not (math.isfinite(a) and math.isfinite(b)):
            self.fail(f"expected finite numbers, got {a:g},{b:g}", param, ctx)
        return [a, b]
