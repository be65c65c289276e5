"""Importing this module registers the generators that ship with synthaug."""
from . import pig  # noqa: F401
