"""``synthaug sample`` (pairs, to a folder a PairBank reads back) and ``synthaug masks`` (SCMG masks)."""
from __future__ import annotations

from pathlib import Path

from .io.images import write_json, write_png
from .errors import SynthaugError
from .pipelines.base import LABELS, Condition, check_device, check_steps, sample_cases
from .pipelines.registry import create_generator, resolve_checkpoint
from .preview import save_grid, save_mask_grid
from .gate import DEFAULT_TRIES, GateUnreachable, with_gate
from .threads import use_threads


def check_count(n, what: str) -> None:
    """Refuse a count that would write an empty folder (or crash drawing its preview) before anything runs."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SynthaugError(f"number of {what} must be an integer >= 1, not {n!r}")


def sample_to_folder(generator, n: int, out, seed: int = 0, tumour_type: str = "mixed", box=None, steps=None,
                     scheduler=None, batch_size: int = 16, device: str = "cpu", background_from=None,
                  engine: str | None = "auto", threads: int | None = None, gate_dice: float | None = None,
                  gate_data=None, judge=None, gate_tries: int = DEFAULT_TRIES,
                     mask_guidance: float | None = None, descriptors=None) -> Path:
    """Write ``images/pair_NNNNN.png``, ``masks/pair_NNNNN.png`` (0/1), ``pairs.json`` and ``preview.png``.

    Pair i is case i of ``sample_cases``: its bytes do not depend on ``n`` or ``batch_size`` (kept for
    compatibility; the networks run fixed blocks). ``background_from`` (a raw folder or a dataset) switches
    the bus generator to real backgrounds: each pair repaints a new lesion into one of its real cases,
    named in the pair's meta as ``background``. ``engine`` and ``threads`` (see ``create_generator``) are
    recorded in pairs.json. ``gate_dice`` keeps only pairs the judge of ``gate_data`` (default:
    ``background_from``) or ``judge`` scores at Dice >= T (``synthaug.gate``); every pair is made before
    the first file is written, so an unreachable gate writes nothing. ``mask_guidance`` (PIG only)
    overrides the checkpoint's guidance of the image toward its mask (``PIGPipeline``)."""
    check_count(n, "pairs")
    check_steps(steps)
    check_device(device)
    kwargs = {k: v for k, v in {"steps": steps, "scheduler": scheduler, "mask_guidance": mask_guidance,
                                "descriptors": descriptors}.items() if v is not None}
    if mask_guidance is not None:
        _check_mask_guidance(generator)
    threads = use_threads(threads)
    gen = generator if hasattr(generator, "sample") else create_generator(generator, device=device, engine=engine,
                                                                          threads=threads, **kwargs)
    if background_from is not None:
        from .data.mix import with_background

        gen = with_background(gen, "real", background_from)
    gen = with_gate(gen, gate_dice, real=gate_data if gate_data is not None else background_from, judge=judge,
                    tries=gate_tries)
    use = gen.conditions

    def condition_of(i: int) -> Condition:
        label = LABELS[i % 2] if tumour_type == "mixed" else tumour_type
        return Condition(label=label if "label" in use else None, box=box if "box" in use else None)

    try:
        pairs = sample_cases(gen, seed, range(n), condition_of, progress=True)
    except GateUnreachable as e:
        raise GateUnreachable(f"{e}; nothing was written") from None
    out = Path(out)
    meta, identity = {}, gen.checkpoint_hash()
    for i, p in enumerate(pairs):
        name = f"pair_{i:05d}"
        write_png(out / "images" / f"{name}.png", p.image)
        write_png(out / "masks" / f"{name}.png", p.mask)
        meta[name] = {**p.meta, "checkpoint_hash": identity}
    gate = {**gen.describe(), "draws": gen.draws, "rejection_rate": round(gen.rejection_rate, 4)} \
        if gate_dice is not None else None
    write_json(out / "pairs.json", {"generator": gen.name, "engine": gen.engine, "threads": threads,
                                    **({"gate": gate} if gate else {}), "pairs": meta})
    titles = [str(m.get("label") or "") for m in meta.values()]
    # one block of rows per tumour type (benign above malignant, like the BUS paper's Fig. 4)
    order = sorted(range(len(pairs)), key=lambda i: LABELS.index(titles[i]) if titles[i] in LABELS else len(LABELS))
    ncol = min(8, max(titles.count(t) for t in set(titles)))
    save_grid(out / "preview.png", [pairs[i].image for i in order], [pairs[i].mask for i in order],
              titles=[titles[i] for i in order], ncol=ncol)
    return out


def _check_mask_guidance(generator) -> None:
    """Refuse --mask-guidance for generators without it before loading anything (the value itself is
    checked by the PIG generator)."""
    name = generator.name if hasattr(generator, "sample") else resolve_checkpoint(generator)[0].name
    if name != "pig":
        raise SynthaugError(f"--mask-guidance is a PIG sampler option; the {name} generator has none")


def masks_to_folder(checkpoint, n: int, out, seed: int = 0, tumour_type: str | None = None, box=None,
                    device: str = "cpu", threads: int | None = None) -> Path:
    """SCMG masks: ``masks/mask_NNNNN.png`` (0/1), ``masks.json`` (type and box of each) and ``preview.png``."""
    from .pipelines.scmg import ScmgMasks

    check_count(n, "masks")
    check_device(device)
    threads = use_threads(threads)
    gen = ScmgMasks.from_pretrained(checkpoint, device=device)
    masks, conds = gen.sample(n, seed=seed, conditions=[Condition(tumour_type, box)] * n)
    out = Path(out)
    meta = {}
    for i, (mask, c) in enumerate(zip(masks, conds)):
        write_png(out / "masks" / f"mask_{i:05d}.png", mask)
        meta[f"mask_{i:05d}"] = c.to_dict()
    write_json(out / "masks.json", {"checkpoint": str(checkpoint), "seed": seed, "threads": threads, "masks": meta})
    save_mask_grid(out / "preview.png", masks, [c.box for c in conds], titles=[c.label for c in conds])
    return out

