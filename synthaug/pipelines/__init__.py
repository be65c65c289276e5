"""Generators behind one registry (see ``base``)."""
from .base import Condition, Pair, PairGenerator, create_generator, list_generators, register_generator

__all__ = ["Condition", "Pair", "PairGenerator", "create_generator", "list_generators", "register_generator"]
