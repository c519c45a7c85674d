"""Errors that tell the user what is wrong with their input, and how components report them."""

from __future__ import annotations

import contextlib
import sys


class UserInputError(Exception):
    """Bad input from the user: the message says what is wrong and where (file, line, field)."""


@contextlib.contextmanager
def user_errors():
    """Turns a :class:`UserInputError` into a clean exit with its message, instead of a bare stack trace."""
    try:
        yield
    except UserInputError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


class ConfigError(UserInputError, ValueError):
    """A configuration value is invalid; the message names the config class and the field."""
