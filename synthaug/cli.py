"""The ``synthaug`` command. Thin: parses arguments and calls the public API.

The subcommands live in ``synthaug.commands`` (one module per group); this module joins them.
"""
from __future__ import annotations

import warnings

import click

from .commands import convert as _convert, dataset as _dataset, generate as _generate, train as _train
from .commands import trial as _trial
# re-exported for commands defined here or by plugins
from .commands.common import (DEVICE_HELP, ENGINE_HELP, THREADS_HELP, _device, _friendly,  # noqa: F401
                              _gate_options, _parse_box, _parse_shard, _threads)

GENERATING = ("sample", "expand", "demo", "masks")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="synthaug")
@click.pass_context
def main(ctx):
    """Paired synthetic augmentation (image + lesion mask) for segmentation trainers."""
    # timm's import calls torch.jit.interface, which newer torch flags on every run: noise a user cannot act on
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.interface` is deprecated", category=FutureWarning)
    if ctx.invoked_subcommand in GENERATING:  # before torch loads: OpenMP reads it once
        from .threads import prepare_openmp

        prepare_openmp()


for _cmd in (_convert.convert, _dataset.expand, _dataset.revert, _dataset.splits, _dataset.generators_cmd,
             _train.train, _train.fit, _generate.sample, _generate.masks, _train.assemble_bus_cmd,
             _train.calibrate_cmd, _generate.demo, _trial.trial):
    main.add_command(_cmd)

if __name__ == "__main__":
    main()
