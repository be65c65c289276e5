"""Commands of the ``synthaug`` CLI that live in their own module (``cli.py`` registers them): each parses
its arguments and calls the public API, nothing more."""
