"""Errors a user can cause with bad input.

Every such error is an :class:`InputError`: one message that names the file, the row or the
field and says what was expected. The CLI turns it into exit status 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (file, row, field or value); the message says where and what was expected."""


class ProcessSpecError(InputError):
    """A process specification (TOML file or mapping) that does not validate."""


class DemandError(InputError):
    """Demand draws that do not follow the demand contract."""
