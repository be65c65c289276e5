"""Loading third-party weights without their progress bars (diffusers, transformers).

Loading takes milliseconds here, and each library printed its own bar above every command's output.
"""
from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def quiet_loading():
    """No diffusers/transformers progress bars while a checkpoint loads: a few milliseconds of loading
    printed two bars above every command's own output. Each library's setting is put back afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    was = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in was:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in was:
            if enabled:
                lib.enable_progress_bar()
