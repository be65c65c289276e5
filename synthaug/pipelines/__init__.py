"""Generators: the protocol (``base``), checkpoint folders (``checkpoint``) and the registry they register into."""
from .base import Condition, Pair, PairGenerator
from .registry import create_generator, list_generators, register_generator

__all__ = ["Condition", "Pair", "PairGenerator", "create_generator", "list_generators", "register_generator"]
