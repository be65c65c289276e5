"""``synthaug expand``, ``revert``, ``splits`` and ``generators``: an nnU-Net raw folder with synthetic cases."""
from __future__ import annotations

from pathlib import Path

import click

from ..paths import DEFAULT_GENERATOR
from .common import DESCRIPTOR_HELP, DEVICE_HELP, ENGINE_HELP, THREADS_HELP, _device, _friendly, _gate_options, _parse_shard, _threads, JSON_HELP, say_report


def expand_summary(raw: Path, report: dict) -> str:
    """One line on what ``expand`` did (or would do): counts, the folder, its splits and the gate."""
    changes = [f"{report['added']} synthetic case(s) added"] + [
        f"{report[key]} {word}" for key, word in (("removed", "removed"), ("merged", "merged from shards"))
        if report[key]]
    line = (f"{'dry run, nothing written: would have ' if report['dry_run'] else ''}{', '.join(changes)} in {raw}: "
            f"{report['real_cases']} real and {report['total_synthetic']} synthetic training cases")
    if report.get("splits"):
        line += f"; splits (synthetic cases train only): {report['splits']}"
    if report.get("gate"):
        line += f"; the gate kept {report['gate']['cases']} of {report['gate']['draws']} drawn"
    return line


def revert_summary(raw: Path, report: dict) -> str:
    """One line on what ``revert`` removed and restored."""
    restored = ["dataset.json"] + [Path(p).name for p in report.get("splits_restored", [])]
    line = (f"removed {report['removed']} synthetic case(s) from {raw}; restored {', '.join(restored)}; "
            f"{report['real_cases']} real cases untouched")
    if report.get("preprocessed_removed"):
        line += f"; removed {report['preprocessed_removed']}"
    return line


@click.command(short_help="Add synthetic cases to an nnU-Net raw folder (atomic, revertible).")
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--ratio", type=float, required=True, help="Synthetic cases per real training case (0 < r <= 10).")
@click.option("--generator", "generator", default=DEFAULT_GENERATOR, show_default=True, help="Registered name or checkpoint folder.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Cases per step; bytes never depend on it (the networks run fixed blocks of 8).")
@click.option("--device", default="cpu", show_default=True, callback=_device, help=DEVICE_HELP)
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Sampler steps, >= 1 (the checkpoint default if unset; recorded as that number).")
@click.option("--shard", default=None, help="Generate only part i of n (i/n); run without --shard to merge.")
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@click.option("--background", type=click.Choice(["synthetic", "real"]), default="synthetic", show_default=True,
              help="real: keep the tissue of RAW_DATASET's own training cases and repaint only a new lesion "
                   "(bus); each such case then trains only in folds that train on its background case.")
@click.option("--engine", type=click.Choice(["auto", "torch", "openvino"]), default=None,
              help=ENGINE_HELP + " Default: the folder's recorded engine, else auto.")
@click.option("--allow-engine-change", is_flag=True, help="Continue a folder expanded with another engine (mixes them).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--no-preview", is_flag=True,
              help="Write no preview PNG (default: a grid of the first 16 added cases beside RAW_DATASET).")
@click.option("--descriptor", "descriptors", default=None, help=DESCRIPTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@_gate_options
@_friendly
def expand(raw_dataset, ratio, generator, seed, batch_size, device, steps, shard, dry_run, background, engine,
           allow_engine_change, threads, no_preview, descriptors, as_json, gate_dice, gate_tries, judge):
    """Add round(RATIO x real cases) synthetic cases to RAW_DATASET's imagesTr/labelsTr."""
    from ..expand import expand as run

    report = run(raw_dataset, ratio=ratio, generator=generator, seed=seed, batch_size=batch_size,
                 device=device, steps=steps, shard=_parse_shard(shard), dry_run=dry_run, background=background,
                 engine=engine, threads=None if dry_run else _threads(threads),
                 allow_engine_change=allow_engine_change, gate_dice=gate_dice, judge=judge, gate_tries=gate_tries,
                 preview=not no_preview, descriptors=descriptors)
    say_report(report, expand_summary(raw_dataset, report), as_json)
    if report.get("preview"):
        click.echo(f"synthaug: preview of the added cases: {report['preview']}", err=True)


@click.command(short_help="Remove every synthetic case; restore dataset.json exactly.")
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--rebuild-manifest", is_flag=True,
              help="The manifest was lost: take cases named synth_NNNNN as synthetic, delete them and set "
                   "numTraining to the real cases (dataset.json's original bytes are unknown).")
@click.option("--preprocessed", is_flag=True,
              help="Also remove $nnUNet_preprocessed/<this dataset's folder> (its preprocessed synthetic cases and "
                   "splits), and nothing else; plan and preprocess again before training on the real cases.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@_friendly
def revert(raw_dataset, rebuild_manifest, preprocessed, as_json):
    """Remove every synthetic case and restore dataset.json (and splits) exactly."""
    from ..expand import revert as run

    report = run(raw_dataset, rebuild_manifest=rebuild_manifest, preprocessed=preprocessed)
    say_report(report, revert_summary(raw_dataset, report), as_json)


@click.command(short_help="nnU-Net folds over real cases; synthetic cases train only.")
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="splits_final.json to write (default: $nnUNet_preprocessed/DatasetXXX/splits_final.json).")
@click.option("--folds", type=int, default=5, show_default=True)
@_friendly
def splits(raw_dataset, out, folds):
    """Write nnU-Net folds over real cases only; synthetic cases join every fold's train list."""
    from ..expand import write_splits

    click.echo(str(write_splits(raw_dataset, out=out, folds=folds)))


@click.command("generators", short_help="Registered generators and their checkpoints.")
def generators_cmd():
    """List registered generators and whether their checkpoint is installed."""
    from ..pipelines.registry import list_generators

    for row in list_generators():
        state = "installed" if row["installed"] else "not installed"
        click.echo(f"{row['name']:<8} {state:<14} conditions={','.join(row['conditions']) or '-'}  {row['default_checkpoint']}")
