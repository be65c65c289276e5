"""``synthaug sample``, ``masks`` and ``demo``: pairs and masks written to folders, with previews."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import click

from ..paths import DEFAULT_GENERATOR
from .common import DESCRIPTOR_HELP, DEVICE_HELP, ENGINE_HELP, THREADS_HELP, _device, _friendly, _gate_options, _parse_box, _threads, JSON_HELP, say_report


def written_summary(folder: Path, record: str, key: str, seconds: float) -> str:
    """One line on what a sampling command wrote, read back from its record: how many of each tumour type,
    by what, how long it took, what the gate rejected, and where."""
    info = json.loads((folder / record).read_text(encoding="utf-8"))
    items = list(info[key].values())
    types = Counter(item.get("label") or "untyped" for item in items)
    by = f" by {info['generator']} ({info['engine']}, {info['threads']} thread(s))" if "generator" in info else ""
    gate = info.get("gate")
    gated = f"; the gate kept {len(items)} of {gate['draws']} drawn" if gate else ""
    kinds = ", ".join(f"{count} {label}" for label, count in sorted(types.items()))
    files = f"{key}/, {record}, preview.png" if key == "masks" else f"images/, masks/, {record}, preview.png"
    return f"wrote {len(items)} {key} ({kinds}){by} in {seconds:.1f} s{gated}: {folder} ({files})"


@click.command(short_help="Write N generated pairs with a preview (a bank for SyntheticMix).")
@click.option("--generator", "generator", default=DEFAULT_GENERATOR, show_default=True, help="Registered name or checkpoint folder.")
@click.option("-n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Number of pairs.")
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
@click.option("--descriptor", "descriptors", default=None, help=DESCRIPTOR_HELP)
@_friendly
def sample(generator, n, out, seed, tumour_type, box, steps, scheduler, batch_size, device, background_from, engine,
           threads, gate_dice, gate_tries, judge, gate_data, mask_guidance, descriptors):
    """Write N generated pairs (images/, masks/, pairs.json) and a preview grid PNG."""
    from ..sampling import sample_to_folder

    start = time.perf_counter()
    folder = sample_to_folder(generator, n, out, seed=seed, tumour_type=tumour_type, box=_parse_box(box), steps=steps,
                              scheduler=scheduler, batch_size=batch_size, device=device,
                              background_from=background_from, engine=engine, threads=_threads(threads),
                              gate_dice=gate_dice, gate_data=gate_data, judge=judge, gate_tries=gate_tries,
                              mask_guidance=mask_guidance, descriptors=descriptors)
    click.echo(written_summary(folder, "pairs.json", "pairs", time.perf_counter() - start))


@click.command(short_help="Write N SCMG lesion masks for a tumour type and box.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="SCMG checkpoint folder (default: checkpoints/scmg-busi-128).")
@click.option("-n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Number of masks.")
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
    from ..paths import checkpoints_root
    from ..sampling import masks_to_folder

    checkpoint = checkpoint or checkpoints_root() / "scmg-busi-128"
    start = time.perf_counter()
    folder = masks_to_folder(checkpoint, n, out, seed=seed, tumour_type=tumour_type, box=_parse_box(box),
                             device=device, threads=_threads(threads))
    click.echo(written_summary(folder, "masks.json", "masks", time.perf_counter() - start))


@click.command(short_help="The main job on the shipped generator, no data needed.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo_out"), show_default=True)
@click.option("--generator", "generator", default=DEFAULT_GENERATOR, show_default=True, help="Registered name or checkpoint folder.")
@click.option("-n", "n", type=click.IntRange(min=1), default=16, show_default=True, help="Base cases to write.")
@click.option("--ratio", type=float, default=0.25, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampler steps, >= 1 (checkpoint default if unset).")
@click.option("--scheduler", type=click.Choice(["ddim", "dpm++", "unipc"]), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=_device, help=DEVICE_HELP)
@click.option("--engine", type=click.Choice(["auto", "torch", "openvino"]), default="auto", show_default=True,
              help=ENGINE_HELP)
@click.option("--threads", type=click.IntRange(min=1), default=None, help=THREADS_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@_friendly
def demo(out, generator, n, ratio, steps, scheduler, seed, device, engine, threads, as_json):
    """Main job on the shipped checkpoint: generated cases -> nnU-Net raw folder -> expand -> preview.png."""
    from ..demo import run_demo

    start = time.perf_counter()
    report = run_demo(out, generator=generator, n=n, ratio=ratio, seed=seed, steps=steps, scheduler=scheduler,
                      device=device, engine=engine, threads=_threads(threads))
    say_report(report, f"demo in {time.perf_counter() - start:.1f} s: {n} {report['generator']} cases as an nnU-Net raw "
                       f"folder, expanded with {report['added']} more at ratio {ratio:g}: {report['raw_dataset']}; "
                       f"every case in {report['preview']}; undo with `synthaug revert {report['raw_dataset']}`",
               as_json)
