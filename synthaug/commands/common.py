"""What every command shares: one-line errors, the thread note, --device, --shard, --box and gate options."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from ..errors import SynthaugError

_THREADS_NOTE = "synthaug.threads_note"


def _friendly(fn):
    """Turn SynthaugError into 'Error: ...' and exit code 2, without a traceback (and nothing else said)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            out = fn(*args, **kwargs)
        except SynthaugError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2)
        note = click.get_current_context().meta.get(_THREADS_NOTE)
        if note:
            click.echo(note, err=True)
        return out

    return wrapper


def _parse_shard(value: str | None):
    if value is None:
        return None
    try:
        i, n = (int(v) for v in value.split("/"))
    except ValueError:
        raise click.BadParameter("use i/n, e.g. 0/4") from None
    if not (n >= 1 and 0 <= i < n):
        raise click.BadParameter(f"shard {value}: need 0 <= i < n")
    return i, n


DEVICE_HELP = "Torch device: cpu, cuda, cuda:N or mps; checked before anything loads."


def _device(ctx, param, value):
    """--device is checked up front: a typo or a missing GPU is one line, not a traceback after loading."""
    from ..pipelines.base import check_device

    try:
        return check_device(value)
    except SynthaugError as e:
        raise click.BadParameter(str(e)) from None


ENGINE_HELP = ("What runs the denoising loop and VAE decode: openvino (CPU, bf16; needs synthaug[openvino]), "
               "torch, or auto (openvino on CPU when installed). Recorded with the pairs.")
DESCRIPTOR_HELP = ("bus checkpoints trained on descriptor prompts: a mix of BI-RADS words, e.g. "
                   "'echo=isoechoic:0.5,hypoechoic:0.5;margin=indistinct' (default: the training shares).")
THREADS_HELP = "CPU threads (default: the cores idle at start, at least 1). Printed and recorded."


def _threads(threads: int | None) -> int:
    """The thread count a generating command uses; said on stderr once the command succeeds (``_friendly``),
    so a failure stays one error line."""
    from ..threads import default_threads, usable_cores

    n = threads or default_threads()
    how = "--threads" if threads else "default: cores idle at start"
    click.get_current_context().meta[_THREADS_NOTE] = f"synthaug: {n} thread(s) of {usable_cores()} cores ({how})"
    return n


def _gate_options(f):
    """--gate-dice, --gate-tries and --judge (synthaug.gate), shared by the generating commands."""
    f = click.option("--judge", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
                     help="A trained judge folder (synthaug train judge ... /final) instead of the dataset's "
                          "cached one.")(f)
    f = click.option("--gate-tries", type=click.IntRange(min=1), default=20, show_default=True,
                     help="Draws per pair before the gate counts as unreachable (an error; nothing is written "
                          "when the first step cannot pass).")(f)
    return click.option("--gate-dice", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
                        help="Quality gate: keep a pair only if a segmenter trained on the real training cases "
                             "(once per dataset, cached) finds its mask with Dice >= T; others are redrawn.")(f)


def _parse_box(box: str | None):
    if not box:
        return None
    try:
        values = tuple(float(v) for v in box.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise click.BadParameter("--box takes four numbers x0,y0,x1,y1")
    return values


JSON_HELP = "Print the full report as JSON (for scripts) instead of the summary line."


def say_report(report: dict, summary: str, as_json: bool) -> None:
    """The summary line (notes after it, on stderr) or, with ``--json``, the whole report."""
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(summary)
    for note in report.get("notes", []):
        click.echo(f"synthaug: {note}", err=True)
