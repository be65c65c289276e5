"""``synthaug train``, ``fit``, ``assemble-bus`` and ``calibrate``: generators trained with the recipes and the
one loop, joined, and their contrast hints calibrated."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import SynthaugError
from .common import _friendly


@click.command(short_help="Train one part from recipes/ (scmg, vae, ldm, controlnet, pig, judge and more).")
@click.argument("kind")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="nnU-Net raw folder or the BUSI release folder (default: $SYNTHAUG_DATA/BUSI, train split).")
@click.option("--profile", default="cpu-128", show_default=True, help="Recipe profile (recipes/KIND-PROFILE.yaml) or a YAML path.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder (states, log, final checkpoint).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Override the recipe's step count.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the recipe's batch size.")
@click.option("--max-minutes", type=float, default=None, help="Stop and export after this wall time; rerun to resume.")
@click.option("--resume/--no-resume", default=True, show_default=True)
@click.option("--init-from", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Start from the weights of an exported checkpoint folder (ignored when resuming a run).")
@click.option("--set", "assignments", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any recipe value, e.g. --set model.curvature_weight=0 (SCMG without L_cur).")
@_friendly
def train(kind, data, profile, out, steps, batch_size, max_minutes, resume, init_from, assignments):
    """Train KIND (pig, ddpm-image, scmg, vae, ldm, controlnet) with a recipe; resumable, accelerate-ready."""
    from ..paths import data_root
    from ..training.recipes import apply_overrides, load_recipe
    from ..training.run import run_recipe

    recipe = apply_overrides(load_recipe(kind, profile), list(assignments))
    data = data or data_root() / "BUSI"
    final = run_recipe(recipe, data, out, steps=steps, batch_size=batch_size, max_minutes=max_minutes,
                       resume=resume, init_from=init_from)
    click.echo(str(final))


@click.command(short_help="Train every part of a generator on your raw folder, then check it.")
@click.argument("raw_dataset", type=click.Path(path_type=Path))
@click.option("--generator", "generator", type=click.Choice(["bus", "pig"]), default="bus", show_default=True,
              help="bus: SCMG + VAE + LDM + ControlNet, assembled; pig: PIG's joint diffusion, in pixel space "
                   "with --profile cpu-128, on the BUSI VAE's latents (as the shipped pig) with latent-cpu-128.")
@click.option("--profile", default="cpu-128", show_default=True,
              help="Recipe profile of every part (recipes/PART-PROFILE.yaml): cpu-128, paper (GPUs) or tiny (tests).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Run folder: one subfolder per part, fit_plan.json, and the generator in OUT/checkpoint.")
@click.option("--minutes", type=float, default=None,
              help="Time budget for the whole fit; every part's steps are scaled to fit (default: full recipes).")
@click.option("--set", "assignments", multiple=True, metavar="[PART:]SECTION.KEY=VALUE",
              help="Override a recipe value of every part, or of one part with PART: (e.g. ldm:train.batch_size=8).")
@click.option("--check-pairs", type=click.IntRange(min=0), default=16, show_default=True,
              help="Pairs sampled for the closing quality check and preview (0: no check).")
@_friendly
def fit(raw_dataset, generator, profile, out, minutes, assignments, check_pairs):
    """Train every part of a generator on RAW_DATASET's training cases within a time budget; rerun to resume.

    Ends with a summary on stderr: steps per part against the recipes, a quick quality check of
    the generator against the real cases, a preview PNG, and a warning when the budget was too small."""
    import os

    from ..fit import fit as run

    checkpoint = run(raw_dataset, generator=generator, profile=profile, out=out, minutes=minutes,
                     assignments=assignments)
    if os.environ.get("RANK", "0") == "0":  # one process speaks under accelerate launch / torchrun
        if check_pairs:
            from ..fit_report import fit_summary

            for line in fit_summary(raw_dataset, out, n=check_pairs)["lines"]:
                click.echo(f"synthaug: {line}", err=True)
        click.echo(str(checkpoint))


@click.command("assemble-bus", short_help="Join trained VAE, LDM, ControlNet and SCMG into one bus.")
@click.option("--vae", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="VAE run output (synthaug train vae ... /final).")
@click.option("--ldm", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--controlnet", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--scmg", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The bus checkpoint folder to write.")
@click.option("--steps", type=click.IntRange(min=1), default=20, show_default=True, help="Default sampler steps.")
@click.option("--guidance-scale", type=float, default=1.0, show_default=True, help="Default text guidance.")
@click.option("--control-scale", type=float, default=1.0, show_default=True,
              help="Default ControlNet conditioning scale (how strongly the mask steers the image).")
@click.option("--contrast-gain", type=float, default=1.0, show_default=True,
              help="Contrast-hint ControlNets: stretch the asked lesion contrast about the training median by this "
                   "factor (1/slope of made on asked contrast, from benchmarks/descriptor_quality.py).")
@click.option("--contrast-offset", type=float, default=0.0, show_default=True,
              help="Contrast-hint ControlNets: grey levels added to every hint contrast (negative: fainter lesions).")
@click.option("--edge-gain", type=float, default=1.0, show_default=True,
              help="Edge-hint ControlNets: stretch the asked boundary sharpness about the training median.")
@click.option("--mask-smoothing", default=None,
              help="Blur of the SCMG masks before thresholding: a sigma in px, or 'auto' to fit one per type that "
                   "gives the training share of irregular outlines (default: none).")
@click.option("--match-margin", is_flag=True, default=False,
              help="Descriptor checkpoints: an asked margin word also picks the mask outline (irregular or not).")
@_friendly
def assemble_bus_cmd(vae, ldm, controlnet, scmg, out, steps, guidance_scale, control_scale, contrast_gain,
                     contrast_offset, edge_gain, mask_smoothing, match_margin):
    """Join trained VAE, LDM, ControlNet and SCMG into one "bus" generator checkpoint."""
    from ..pipelines.bus import assemble_bus

    click.echo(str(assemble_bus(vae, ldm, controlnet, scmg, out, default_steps=steps,
                                    guidance_scale=guidance_scale, control_scale=control_scale,
                                    contrast_gain=contrast_gain, contrast_offset=contrast_offset,
                                    mask_smoothing=_sigma_or_auto(mask_smoothing), match_margin=match_margin,
                                    edge_gain=edge_gain)))


@click.command("calibrate", short_help="Calibrate a contrast-hint bus checkpoint's hints (a copy).")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The calibrated copy to write (a new folder).")
@click.option("-n", "n", type=click.IntRange(min=1), default=448, show_default=True, help="Pairs sampled to fit the map.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=2, show_default=True,
              help="Fits: each one samples N new pairs through the map of the one before.")
@click.option("--mask-smoothing", default=None,
              help="Sampling default to calibrate for and store: a sigma in px or 'auto' (default: the checkpoint's).")
@click.option("--match-margin/--no-match-margin", default=None,
              help="Sampling default to calibrate for and store (default: the checkpoint's).")
@click.option("--edge-gain", type=float, default=None,
              help="Sampling default to calibrate for and store, edge-hint checkpoints only: the stretch of each "
                   "lesion's asked boundary sharpness about the training median (default: the checkpoint's).")
@_friendly
def calibrate_cmd(checkpoint, out, n, seed, rounds, mask_smoothing, match_margin, edge_gain):
    """Copy a contrast-hint bus CHECKPOINT to OUT with its contrast hints calibrated on N sampled pairs a round."""
    from ..pipelines.bus_calibration import calibrated_checkpoint

    if n < 64:
        raise SynthaugError(f"-n {n}: a calibration needs at least 64 pairs (448 by default)")
    options = {k: v for k, v in (("mask_smoothing", _sigma_or_auto(mask_smoothing)), ("match_margin", match_margin),
                                 ("edge_gain", edge_gain)) if v is not None}
    click.echo(str(calibrated_checkpoint(checkpoint, out, n=n, seed=seed, rounds=rounds, **options)))


def _sigma_or_auto(text: str | None):
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise SynthaugError(f"--mask-smoothing takes a sigma in px or 'auto', not {text!r}") from None
