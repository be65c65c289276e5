"""One exception type for every user-facing failure.

The CLI turns a ``SynthaugError`` into a one-line message and exit code 2, so
library code raises it for bad input instead of printing and exiting.
"""


class SynthaugError(Exception):
    """Bad input or a state synthaug refuses to act on; the message says what to do."""
