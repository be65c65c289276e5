"""The ``synthaug`` command. Thin: parses arguments and calls the public API."""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from .errors import SynthaugError
from .paths import DEFAULT_GENERATOR


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
    from .pipelines.base import check_device

    try:
        return check_device(value)
    except SynthaugError as e:
        raise click.BadParameter(str(e)) from None


GENERATING = ("sample", "expand", "demo", "masks")
ENGINE_HELP = ("What runs the denoising loop and VAE decode: openvino (CPU, bf16; needs synthaug[openvino]), "
               "torch, or auto (openvino on CPU when installed). Recorded with the pairs.")
THREADS_HELP = "CPU threads (default: the cores idle at start, at least 1). Printed and recorded."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="synthaug")
@click.pass_context
def main(ctx):
    """Paired synthetic augmentation (image + lesion mask) for segmentation trainers."""
    if ctx.invoked_subcommand in GENERATING:  # before torch loads: OpenMP reads it once
        from .threads import prepare_openmp

        prepare_openmp()


def _threads(threads: int | None) -> int:
    """The thread count a generating command uses; said on stderr once the command succeeds (``_friendly``),
    so a failure stays one error line."""
    from .threads import default_threads, usable_cores

    n = threads or default_threads()
    how = "--threads" if threads else "default: cores idle at start"
    click.get_current_context().meta[_THREADS_NOTE] = f"synthaug: {n} thread(s) of {usable_cores()} cores ({how})"
    return n


# ----------------------------------------------------------------------------- convert
@main.group(short_help="Public data sets and 3D volumes -> nnU-Net v2 raw folders (2D PNG, labels {0,1}).")
def convert():
    """Convert a public data set, or 3D volumes sliced to 2D, to an nnU-Net v2 raw folder (2D PNG, labels {0,1})."""


# short_help: click cuts a docstring at its first period ("et al.") or about 45 characters
@convert.command("busi", short_help="BUSI release -> DST_RAW/DatasetNNN_BUSI (train split; test split to imagesTs).")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst_raw", type=click.Path(path_type=Path))
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", default="BUSI", show_default=True, help="Dataset name after DatasetNNN_.")
@click.option("--size", type=int, default=None, help="Resize every case to SIZE x SIZE (e.g. 128, 256).")
@click.option("--split", "split_file", type=click.Path(path_type=Path), default=None,
              help="Split JSON (default: SRC/split.json).")
@_friendly
def convert_busi_cmd(src, dst_raw, dataset_id, name, size, split_file):
    """BUSI (Al-Dhabyani et al. 2020): SRC is the folder holding Dataset_BUSI_with_GT and split.json."""
    from .io.public_sets import convert_busi

    out = convert_busi(src, dst_raw, dataset_id=dataset_id, name=name, size=size, split_file=split_file)
    click.echo(str(out))


@convert.command("folder", short_help="Image folder + mask folder (+ CSV of tumour types) -> DST_RAW/DatasetNNN_NAME.")
@click.argument("images", type=click.Path(path_type=Path))
@click.argument("masks", type=click.Path(path_type=Path))
@click.argument("dst_raw", type=click.Path(path_type=Path))
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", default="Custom", show_default=True, help="Dataset name after DatasetNNN_ (also the case prefix).")
@click.option("--labels", type=click.Path(path_type=Path), default=None,
              help="CSV of case,type rows (type benign or malignant; empty for unknown). Without it: no types.")
@click.option("--size", type=int, default=None, help="Resize every case to SIZE x SIZE (e.g. 128).")
@click.option("--mask-suffix", default="_mask", show_default=True,
              help="Mask of a.png is a<SUFFIX>.png (needed when MASKS is the IMAGES folder); a.png also matches.")
@click.option("--mask-threshold", type=float, default=None,
              help="Binarise masks with more than two values (e.g. JPEG): lesion = value > THRESHOLD.")
@click.option("--channel-name", default="ultrasound", show_default=True, help="nnU-Net channel name of the images.")
@_friendly
def convert_folder_cmd(images, masks, dst_raw, dataset_id, name, labels, size, mask_suffix, mask_threshold,
                       channel_name):
    """IMAGES and MASKS folders whose files match by name (png/jpg/bmp/tif; MASKS may be IMAGES itself)."""
    from .io.folders import convert_folder

    click.echo(str(convert_folder(images, masks, dst_raw, dataset_id=dataset_id, name=name, labels=labels,
                                  size=size, mask_suffix=mask_suffix, mask_threshold=mask_threshold,
                                  channel_name=channel_name)))


@convert.command("stu", short_help="STU-Hospital -> a test-only raw folder (imagesTs/labelsTs).")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst_raw", type=click.Path(path_type=Path))
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", default="STU", show_default=True, help="Dataset name after DatasetNNN_.")
@click.option("--size", type=int, default=None, help="Resize every case to SIZE x SIZE.")
@_friendly
def convert_stu_cmd(src, dst_raw, dataset_id, name, size):
    """STU-Hospital (Zhuang et al. 2019): SRC holds Hospital/ (or is it). Written as a test set."""
    from .io.public_sets import convert_stu

    out = convert_stu(src, dst_raw, dataset_id=dataset_id, name=name, size=size)
    click.echo(str(out))


@convert.command("volumes", short_help="3D volumes + lesion masks (NIfTI, DICOM, nnU-Net 3D raw) -> "
                                      "a 2D raw folder of lesion slices.")
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst_raw", type=click.Path(path_type=Path))
@click.option("--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999).")
@click.option("--name", default="DBT", show_default=True, help="Dataset name after DatasetNNN_.")
@click.option("--pair", "pairs", nargs=2, multiple=True, type=click.Path(path_type=Path),
              help="IMAGE MASK volume pair (NIfTI file or DICOM folder); repeatable. Without it SRC is an nnU-Net 3D raw folder.")
@click.option("--axis", type=int, default=0, show_default=True, help="Slicing axis of the (z, y, x) volume.")
@click.option("--negative-fraction", type=float, default=0.0, show_default=True,
              help="Share of lesion-free slices to keep as well.")
@click.option("--size", type=int, default=None, help="Resize every slice to SIZE x SIZE.")
@click.option("--seed", type=int, default=0, show_default=True)
@_friendly
def convert_volumes_cmd(src, dst_raw, dataset_id, name, pairs, axis, negative_fraction, size, seed):
    """3D volumes with lesion masks (DBT, ...) -> 2D raw folder of the slices that contain lesion.

    SRC is an nnU-Net v2 3D raw folder; with --pair, SRC is ignored (pass '-')."""
    from .io.volumes import volumes_to_raw

    source = list(pairs) if pairs else src
    out = volumes_to_raw(source, dst_raw, dataset_id=dataset_id, name=name, size=size, axis=axis,
                         negative_fraction=negative_fraction, seed=seed)
    click.echo(str(out))


# ----------------------------------------------------------------------------- expand / revert / splits
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


@main.command()
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
@_gate_options
@_friendly
def expand(raw_dataset, ratio, generator, seed, batch_size, device, steps, shard, dry_run, background, engine,
           allow_engine_change, threads, gate_dice, gate_tries, judge):
    """Add round(RATIO x real cases) synthetic cases to RAW_DATASET's imagesTr/labelsTr."""
    from .expand import expand as run

    report = run(raw_dataset, ratio=ratio, generator=generator, seed=seed, batch_size=batch_size,
                 device=device, steps=steps, shard=_parse_shard(shard), dry_run=dry_run, background=background,
                 engine=engine, threads=None if dry_run else _threads(threads),
                 allow_engine_change=allow_engine_change, gate_dice=gate_dice, judge=judge, gate_tries=gate_tries)
    click.echo(json.dumps(report, indent=2))


@main.command()
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--rebuild-manifest", is_flag=True,
              help="The manifest was lost: take cases named synth_NNNNN as synthetic, delete them and set "
                   "numTraining to the real cases (dataset.json's original bytes are unknown).")
@_friendly
def revert(raw_dataset, rebuild_manifest):
    """Remove every synthetic case and restore dataset.json (and splits) exactly."""
    from .expand import revert as run

    click.echo(json.dumps(run(raw_dataset, rebuild_manifest=rebuild_manifest), indent=2))


@main.command()
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="splits_final.json to write (default: $nnUNet_preprocessed/DatasetXXX/splits_final.json).")
@click.option("--folds", type=int, default=5, show_default=True)
@_friendly
def splits(raw_dataset, out, folds):
    """Write nnU-Net folds over real cases only; synthetic cases join every fold's train list."""
    from .expand import write_splits

    click.echo(str(write_splits(raw_dataset, out=out, folds=folds)))


@main.command("generators")
def generators_cmd():
    """List registered generators and whether their checkpoint is installed."""
    from .pipelines.registry import list_generators

    for row in list_generators():
        state = "installed" if row["installed"] else "not installed"
        click.echo(f"{row['name']:<8} {state:<14} conditions={','.join(row['conditions']) or '-'}  {row['default_checkpoint']}")


# ----------------------------------------------------------------------------- train / sample
@main.command()
@click.argument("kind")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="nnU-Net raw folder or the BUSI release folder (default: $SYNTHAUG_DATA/BUSI, train split).")
@click.option("--profile", default="cpu-128", show_default=True, help="Recipe profile (recipes/KIND-PROFILE.yaml) or a YAML path.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder (states, log, final checkpoint).")
@click.option("--steps", type=int, default=None, help="Override the recipe's step count.")
@click.option("--batch-size", type=int, default=None, help="Override the recipe's batch size.")
@click.option("--max-minutes", type=float, default=None, help="Stop and export after this wall time; rerun to resume.")
@click.option("--resume/--no-resume", default=True, show_default=True)
@click.option("--init-from", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Start from the weights of an exported checkpoint folder (ignored when resuming a run).")
@click.option("--set", "assignments", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any recipe value, e.g. --set model.curvature_weight=0 (SCMG without L_cur).")
@_friendly
def train(kind, data, profile, out, steps, batch_size, max_minutes, resume, init_from, assignments):
    """Train KIND (pig, ddpm-image, scmg, vae, ldm, controlnet) with a recipe; resumable, accelerate-ready."""
    from .paths import data_root
    from .training.recipes import apply_overrides, load_recipe
    from .training.run import run_recipe

    recipe = apply_overrides(load_recipe(kind, profile), list(assignments))
    data = data or data_root() / "BUSI"
    final = run_recipe(recipe, data, out, steps=steps, batch_size=batch_size, max_minutes=max_minutes,
                       resume=resume, init_from=init_from)
    click.echo(str(final))


@main.command()
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--generator", "generator", type=click.Choice(["bus", "pig"]), default="bus", show_default=True,
              help="bus: SCMG + VAE + LDM + ControlNet, assembled; pig: pixel-space joint diffusion.")
@click.option("--profile", default="cpu-128", show_default=True,
              help="Recipe profile of every part (recipes/PART-PROFILE.yaml): cpu-128, paper (GPUs) or tiny (tests).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run folder: one subfolder per part, fit_plan.json, and the generator in OUT/checkpoint.")
@click.option("--minutes", type=float, default=None,
              help="Time budget for the whole fit; every part's steps are scaled to fit (default: full recipes).")
@click.option("--set", "assignments", multiple=True, metavar="[PART:]SECTION.KEY=VALUE",
              help="Override a recipe value of every part, or of one part with PART: (e.g. ldm:train.batch_size=8).")
@_friendly
def fit(raw_dataset, generator, profile, out, minutes, assignments):
    """Train every part of a generator on RAW_DATASET's training cases within a time budget; rerun to resume."""
    import os

    from .fit import fit as run

    checkpoint = run(raw_dataset, generator=generator, profile=profile, out=out, minutes=minutes,
                     assignments=assignments)
    if os.environ.get("RANK", "0") == "0":  # one line under accelerate launch / torchrun
        click.echo(str(checkpoint))


@main.command()
@click.option("--generator", "generator", default=DEFAULT_GENERATOR, show_default=True, help="Registered name or checkpoint folder.")
@click.option("-n", "n", type=int, default=16, show_default=True, help="Number of pairs.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--type", "tumour_type", type=click.Choice(["benign", "malignant", "mixed"]), default="mixed",
              show_default=True, help="Tumour type for class-conditional generators (mixed alternates).")
@click.option("--box", default=None, help="Bounding box x0,y0,x1,y1 in [0,1] for box-conditioned generators.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampler steps, >= 1 (checkpoint default if unset).")
@click.option("--scheduler", type=click.Choice(["ddim", "dpm++", "unipc"]), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Cases per step; bytes never depend on it (the networks run fixed blocks of 8).")
@click.option("--device", default="cpu", show_default=True, callback=_device, help=DEVICE_HELP)
@click.option("--background-from", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="nnU-Net raw folder whose real cases serve as backgrounds: the bus generator repaints a new "
                   "lesion into a real image (real-background mode).")
@click.option("--engine", type=click.Choice(["auto", "torch", "openvino"]), default="auto", show_default=True,
              help=ENGINE_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@_gate_options
@click.option("--gate-data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Real training cases the gate's judge learns from (nnU-Net raw folder or BUSI release); "
                   "default: --background-from.")
@click.option("--mask-guidance", type=float, default=None,
              help="PIG only: guidance of the image toward its mask (0 none; checkpoint default if unset). "
                   "Higher makes more coherent pairs at some cost in realism.")
@_friendly
def sample(generator, n, out, seed, tumour_type, box, steps, scheduler, batch_size, device, background_from, engine,
           threads, gate_dice, gate_tries, judge, gate_data, mask_guidance):
    """Write N generated pairs (images/, masks/, pairs.json) and a preview grid PNG."""
    from .sampling import sample_to_folder

    folder = sample_to_folder(generator, n, out, seed=seed, tumour_type=tumour_type, box=_parse_box(box), steps=steps,
                              scheduler=scheduler, batch_size=batch_size, device=device,
                              background_from=background_from, engine=engine, threads=_threads(threads),
                              gate_dice=gate_dice, gate_data=gate_data, judge=judge, gate_tries=gate_tries,
                              mask_guidance=mask_guidance)
    click.echo(str(folder))


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


@main.command()
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="SCMG checkpoint folder (default: checkpoints/scmg-busi-128).")
@click.option("-n", "n", type=int, default=16, show_default=True, help="Number of masks.")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--type", "tumour_type", type=click.Choice(["benign", "malignant"]), default=None,
              help="Tumour type (default: drawn at the training shares).")
@click.option("--box", default=None, help="Bounding box x0,y0,x1,y1 in [0,1] (default: drawn from the training boxes).")
@click.option("--device", default="cpu", show_default=True, callback=_device, help=DEVICE_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@_friendly
def masks(checkpoint, n, out, seed, tumour_type, box, device, threads):
    """Write N SCMG lesion masks for a type and box (masks/, masks.json, preview.png)."""
    from .paths import checkpoints_root
    from .sampling import masks_to_folder

    checkpoint = checkpoint or checkpoints_root() / "scmg-busi-128"
    click.echo(str(masks_to_folder(checkpoint, n, out, seed=seed, tumour_type=tumour_type, box=_parse_box(box),
                                   device=device, threads=_threads(threads))))


@main.command("assemble-bus")
@click.option("--vae", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="VAE run output (synthaug train vae ... /final).")
@click.option("--ldm", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--controlnet", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--scmg", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The bus checkpoint folder to write.")
@click.option("--steps", type=int, default=20, show_default=True, help="Default sampler steps.")
@click.option("--guidance-scale", type=float, default=1.0, show_default=True, help="Default text guidance.")
@click.option("--control-scale", type=float, default=1.0, show_default=True,
              help="Default ControlNet conditioning scale (how strongly the mask steers the image).")
@_friendly
def assemble_bus_cmd(vae, ldm, controlnet, scmg, out, steps, guidance_scale, control_scale):
    """Join trained VAE, LDM, ControlNet and SCMG into one "bus" generator checkpoint."""
    from .pipelines.bus import assemble_bus

    click.echo(str(assemble_bus(vae, ldm, controlnet, scmg, out, default_steps=steps,
                                    guidance_scale=guidance_scale, control_scale=control_scale)))


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--generator", "generator", default=DEFAULT_GENERATOR, show_default=True, help="Registered name or checkpoint folder.")
@click.option("-n", "n", type=int, default=16, show_default=True, help="Base cases to write.")
@click.option("--ratio", type=float, default=0.25, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampler steps, >= 1 (checkpoint default if unset).")
@click.option("--scheduler", type=click.Choice(["ddim", "dpm++", "unipc"]), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_device, help=DEVICE_HELP)
@click.option("--engine", type=click.Choice(["auto", "torch", "openvino"]), default="auto", show_default=True,
              help=ENGINE_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@_friendly
def demo(out, generator, n, ratio, steps, scheduler, seed, device, engine, threads):
    """Main job on the shipped checkpoint: generated cases -> nnU-Net raw folder -> expand -> preview.png."""
    from .demo import run_demo

    click.echo(json.dumps(run_demo(out, generator=generator, n=n, ratio=ratio, seed=seed, steps=steps,
                                   scheduler=scheduler, device=device, engine=engine, threads=_threads(threads)),
                          indent=2))


if __name__ == "__main__":
    main()
