"""Importing this module registers the generators that ship with synthaug."""
from . import pig  # noqa: F401
from . import bus  # noqa: F401
