"""Errors a user can cause in the demand models: the same :class:`InputError` as capacity, so
the CLI maps every bad input to exit status 2."""

from capacity.errors import InputError

__all__ = ["InputError"]
