"""``synthaug trial RAW``: does synthetic data help a segmenter on my data? (``synthaug.evaluation.trial``)"""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import SynthaugError
from ..paths import DEFAULT_GENERATOR


class Refusal(click.ClickException):
    """A folder or option the trial cannot use: one 'Error: ...' line and exit code 2, like every command."""

    exit_code = 2


def _seeds(ctx, param, value: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in value.split(",") if s.strip())
    except ValueError:
        raise click.BadParameter("comma-separated integers, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise click.BadParameter("at least one seed, no repeats, none negative")
    return seeds


@click.command(short_help="Does synthetic data help a segmenter on RAW? Paired statistics and a verdict.")
@click.argument("raw", type=click.Path(path_type=Path))
@click.option("--generator", default=DEFAULT_GENERATOR, show_default=True,
              help="Registered name or checkpoint folder (e.g. one made by `synthaug fit`).")
@click.option("--conditions", default=None,
              help="Comma-separated, e.g. 'real,ordinary,copy-paste 100%,bus 25%,bus 100% + ordinary' "
                   "[default: real, ordinary, <generator> 25%, <generator> 100%, <generator> 100% + ordinary].")
@click.option("--seeds", default="0,1,2", show_default=True, callback=_seeds, help="Training seeds.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Time budget: epochs and seeds are sized from a measurement of this machine, and what was cut "
                   "is said.")
@click.option("--external", type=click.Path(path_type=Path), default=None,
              help="A second raw folder as an external test (e.g. `synthaug convert stu`).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output folder [default: RAW_trial].")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True,
              help="Epochs per run (the most a budget gives).")
@click.option("--size", type=click.IntRange(min=16), default=128, show_default=True, help="Image side in pixels.")
@click.option("--model", default=None, help="Segmenter [default: unet-lite0 when its ImageNet weights are "
                                            "installed, else unet from scratch].")
def trial(raw, generator, conditions, seeds, minutes, external, out, epochs, size, model):
    """Train a small segmenter on RAW's real cases under each condition and seed, test it on a held-out part
    (or imagesTs/labelsTs), and report paired differences against `real` and the best classical augmentation
    with bootstrap CIs, a verdict per condition, and the `synthaug expand --ratio` / `SyntheticMix(ratio=)`
    settings to use. Rerun the same command to resume; results in OUT/trial.md, trial.json, trial.png."""
    from ..evaluation.trial_report import check_folders

    try:  # a wrong folder is refused before the trial's imports (torch, the generators: seconds)
        check_folders(raw, out, external)
    except SynthaugError as e:
        raise Refusal(str(e)) from None
    from ..evaluation.trial import TrialRequest, run_trial

    req = TrialRequest(raw=str(raw), generator=str(generator), conditions=conditions, seeds=seeds, minutes=minutes,
                       external=str(external) if external else None, size=size, epochs=epochs, model=model)
    try:
        path = run_trial(req, out=out, say=lambda line: click.echo(line, err=True))
    except SynthaugError as e:
        raise Refusal(str(e)) from None
    except KeyboardInterrupt:  # finished runs and the interrupted run's last epoch are on disk
        click.echo("\ninterrupted: rerun the same command to resume where it stopped", err=True)
        raise SystemExit(130) from None
    click.echo(f"wrote {path.parent / 'trial.md'}, trial.json and trial.png")
    for line in path.with_name("trial.md").read_text(encoding="utf-8").splitlines()[2:3]:
        click.echo(line)
