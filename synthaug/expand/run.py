"""``expand``: plan which cases a call keeps, makes and deletes, then generate them step by step."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..data.conditions import MAX_RATIO, ConditionSampler, restrict
from ..errors import SynthaugError
from ..gate import DEFAULT_TRIES, GateUnreachable, check_gate, with_gate
from ..io import manifest as mf
from ..io.images import resize_image, resize_mask, sha256_file, write_png
from ..io.manifest import Folder, name_index
from ..io.nnunet_raw import DATASET_JSON
from ..paths import DEFAULT_GENERATOR
from ..pipelines.base import MICRO_BATCH, case_block, check_device, check_steps, pair_seeds, sample_cases
from ..pipelines.engines import check_engine
from ..threads import use_threads
from .files import _backup_splits, _check_writable, _save, _write_dataset_json, _write_errors, write_preview
from .identity import GeneratorRef, _check_engine, _gate_identity
from .splits import FOLDS, SPLITS_NAME, _check_folds, backgrounds_of, write_splits_file

BACKGROUNDS = ("synthetic", "real")


def _check_args(ratio, seed, batch_size, shard, device: str | None = None, steps: int | None = None) -> None:
    if isinstance(ratio, bool) or not (isinstance(ratio, (int, float)) and 0 < ratio <= MAX_RATIO):  # NaN fails too
        raise SynthaugError(f"ratio must be in (0, {MAX_RATIO}], got {ratio}")
    if seed < 0:
        raise SynthaugError(f"seed must be >= 0, got {seed}")
    if batch_size < 1:
        raise SynthaugError(f"batch size must be >= 1, got {batch_size}")
    if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise SynthaugError(f"shard {shard}: need (i, n) with 0 <= i < n")
    check_steps(steps)
    if device is not None:
        check_device(device)


def shard_targets(n_target: int, shard: tuple[int, int] | None) -> list[int]:
    """Case indices a call makes: all of them, or for shard (i, n) the whole blocks g with g % n == i.
    The networks always run whole blocks of MICRO_BATCH cases (``sample_cases``), so a block split over
    shards would be computed by each of them."""
    if shard is None:
        return list(range(n_target))
    return [k for k in range(n_target) if case_block(k) % shard[1] == shard[0]]


# ----------------------------------------------------------------------------- expand
@dataclass
class Plan:
    """What a call changes: which manifest it writes, which cases it keeps, makes and deletes."""

    path: Path  # the main manifest, or this shard's part
    keep: dict  # finished, verified cases the manifest keeps listing
    todo: list[int]  # indices to generate (new, pending, missing or altered)
    stale: set  # synthetic names to delete (beyond the target, or orphaned by a killed run)
    merged: int  # finished cases adopted from shard parts


def _plan(folder: Folder, targets: list[int], shard: tuple[int, int] | None) -> Plan:
    wanted = {folder.name(k) for k in targets}
    main_done = folder.verified(folder.main["cases"]) if folder.main else {}
    if shard is None:
        folder.check_unlisted()
        path = folder.main_path
        from_parts = {n: e for m in folder.parts.values() for n, e in folder.verified(m["cases"]).items()}
        pool = {**from_parts, **main_done}
        stale = (folder.listed() | folder.on_disk()) - wanted
    else:  # a shard touches only its own part: other shards may be writing right now
        path = folder.root / mf.part_name(shard)
        own = folder.parts.get(path) or {"cases": {}, "pending": {}}
        pool = {**folder.verified(own["cases"]), **main_done}
        stale = (set(own["cases"]) | set(own["pending"])) - wanted - set(main_done)
    keep = {n: pool[n] for n in sorted(wanted & set(pool), key=name_index) if shard is None or n not in main_done}
    todo = [k for k in targets if folder.name(k) not in pool]
    return Plan(path, keep, todo, stale, 0 if shard else len(set(keep) - set(main_done)))


def expand(raw_dataset, ratio: float, generator=DEFAULT_GENERATOR, seed: int = 0, batch_size: int = 16, device: str = "cpu",
           steps: int | None = None, shard: tuple[int, int] | None = None, dry_run: bool = False,
           background: str = "synthetic", engine: str | None = None, threads: int | None = None,
           allow_engine_change: bool = False, gate_dice: float | None = None, judge=None,
           gate_tries: int = DEFAULT_TRIES, preview: bool = False, descriptors=None) -> dict:
    """Bring ``raw_dataset`` to ``round(ratio x real)`` synthetic cases; returns a report dict.

    With ``shard=(i, n)`` only the cases of blocks g (MICRO_BATCH consecutive
    indices each) with g % n == i are generated, into a part manifest, leaving
    dataset.json alone; a later call without ``shard`` merges the parts, fills
    any gap and updates dataset.json and the splits. ``background="real"``
    repaints a new lesion into the folder's own real training cases (the bus
    generator's real-background mode); each case records its background case.
    Another synthaug process on the same folder is waited for (see ``folder_lock``).
    ``engine`` (None: the folder's own, else "auto") is part of the manifest's generator identity: a folder
    keeps one engine unless ``allow_engine_change``. ``threads`` (None: torch's setting; the command passes
    ``threads.default_threads()``) is recorded per case.
    ``gate_dice=T`` keeps only cases a judge segmenter trained on the folder's real cases scores at Dice >= T
    (``synthaug.gate``; ``judge`` a trained judge folder instead of the cached one); a gate no pair of the
    first step can pass within ``gate_tries`` draws fails before anything is written.
    ``preview`` writes a grid of the first cases this call added beside the folder (``files.preview_path``;
    the report's ``preview``), never inside it.
    ``descriptors``: a BI-RADS word mix for a bus checkpoint trained on descriptor prompts (e.g.
    ``"echo=isoechoic:0.5,hypoechoic:0.5;margin=indistinct"``, ``models.descriptors.parse_mix``); part of the
    generator identity, and every case records the words it was asked for.
    """
    _check_args(ratio, seed, batch_size, shard, device=device, steps=steps)
    check_engine(engine)
    if gate_dice is not None:
        check_gate(gate_dice, gate_tries)
    if background not in BACKGROUNDS:
        raise SynthaugError(f"background must be one of {', '.join(BACKGROUNDS)}, not {background!r}")
    with mf.folder_lock(raw_dataset, "expand", shard, read_only=dry_run), _write_errors(raw_dataset, "expand"):
        return _expand(raw_dataset, ratio, generator, seed, batch_size, device, steps, shard, dry_run, background,
                       engine=engine, threads=threads, allow_engine_change=allow_engine_change,
                       gate=(gate_dice, judge, gate_tries) if gate_dice is not None else None, preview=preview,
                       descriptors=descriptors)


def _expand(raw_dataset, ratio, generator, seed, batch_size, device, steps, shard, dry_run, background,
            engine=None, threads=None, allow_engine_change=False, gate=None, preview=False, descriptors=None) -> dict:
    folder = Folder.load(raw_dataset)
    ref = GeneratorRef.resolve(generator, steps, engine, device)
    ref.ask_descriptors(descriptors)
    replaced = _check_engine(folder, ref, engine, allow_engine_change)
    if background == "real":  # other pixels: another expansion (synthetic-background manifests keep their identity)
        ref.identity["background"] = "real"
        ref.fields = frozenset({"label"})  # the box follows the background's own lesion
    judge_path = _gate_identity(folder, ref, gate, dry_run) if gate else None
    identity = {"generator": ref.identity, "seed": int(seed), "prefix": folder.prefix, "real_cases": folder.real}
    for path, m in folder.manifests():  # engines were compared above (older manifests do not record one)
        mf.check_identity({**m, "generator": {**m["generator"], "engine": ref.identity["engine"]}}, identity, path)
    n_target = int(round(ratio * len(folder.real)))
    if n_target == 0:  # exit 0 with nothing added would read as success
        raise SynthaugError(f"ratio {ratio:g} of {len(folder.real)} real cases rounds to no synthetic case; use "
                            f"a ratio above {0.5 / max(len(folder.real), 1):.3g} (`synthaug revert` removes them all)")
    targets = shard_targets(n_target, shard)
    plan = _plan(folder, targets, shard)
    splits_dir = folder.preprocessed_dir() if shard is None else None
    splits_path = splits_dir / SPLITS_NAME if splits_dir and splits_dir.is_dir() else None
    if splits_path:
        _check_folds(FOLDS, len(folder.real))
    report = {"added": len(plan.todo), "removed": len(plan.stale & folder.on_disk()), "merged": plan.merged,
              "total_synthetic": len(targets), "real_cases": len(folder.real), "manifest": str(plan.path),
              "splits": str(splits_path) if splits_path else None, "dry_run": bool(dry_run)}
    if dry_run:
        return report

    _check_writable([folder.root, folder.root / "imagesTr", folder.root / "labelsTr"]
                    + ([folder.root / DATASET_JSON] if shard is None else [])  # an immutable one fails last else
                    + ([splits_dir] if splits_path else []))
    if plan.todo:  # whatever can fail on bad metadata or a broken checkpoint fails before the first write
        threads = use_threads(threads)
        sampler, gen = ConditionSampler.from_raw(folder.raw, folder.real), ref.load(device, threads)
        if background == "real":
            from ..data.datasets import PairDataset
            from ..data.mix import with_background

            gen = with_background(gen, "real", PairDataset.from_raw(folder.root, cases=folder.real))
        if gate:
            gen = with_gate(gen, gate[0], judge=judge_path, tries=gate[2])
    first = _pilot(gen, sampler, ref.fields, plan.todo, seed, batch_size) if gate and plan.todo else None
    m = (folder.main if shard is None else folder.parts.get(plan.path)) or mf.new_manifest(
        generator=ref.identity, seed=seed, ratio=ratio, prefix=folder.prefix, real_cases=folder.real,
        dataset_json_bytes=(folder.root / DATASET_JSON).read_bytes(), shard=shard)
    folder.delete(plan.stale, temporaries=shard is None)  # checked against the manifests as loaded
    # cases still to make stay listed as pending: their half-written files must never look unlisted
    m.update(ratio=float(ratio), cases=plan.keep, pending={folder.name(k): {"index": k} for k in plan.todo})
    if plan.todo:  # a manifest from before engines were recorded gets its engine (torch) with its new cases
        if replaced:
            m.setdefault("engine_changes", []).append({"from": replaced, "to": ref.identity["engine"],
                                                       "cases_before": len(plan.keep)})
        m["generator"] = {**m["generator"], "engine": ref.identity["engine"]}
    _save(plan.path, m)
    if shard is None:
        for part in folder.parts:
            part.unlink()
    if plan.todo:
        _generate(folder, gen, sampler, ref.fields, m, plan.path, plan.todo, seed, batch_size, first=first)
        if gate:
            report["gate"] = {**m["gate"], "seconds_per_accepted_pair": round(gen.seconds / max(gen.accepted, 1), 3)}
        if preview:
            report["preview"] = str(write_preview(folder, [folder.name(k) for k in plan.todo], m["cases"]))
    if shard is None:
        if splits_path:
            _backup_splits(m, splits_path, plan.path)
            write_splits_file(splits_path, folder.real, list(m["cases"]), backgrounds=backgrounds_of(m))
        note = _write_dataset_json(folder, m)
        if note:
            report["notes"] = [note]
    return report


def _case_draws(sampler: ConditionSampler, fields, seed: int):
    """``(drawn, condition_of)``: case k's (condition, size), drawn once for the manifest and the generator,
    and the condition as the generator takes it."""

    @functools.lru_cache(maxsize=None)
    def drawn(k: int):
        return sampler.draw(pair_seeds(seed, 1, start=k)[0])

    return drawn, lambda k: restrict(drawn(k)[0], fields)


def _steps(todo: list[int], batch_size: int) -> list[list[int]]:
    """The todo cases of each aligned window of ``batch_size`` indices (whole blocks from MICRO_BATCH up)."""
    window = batch_size if batch_size < MICRO_BATCH else batch_size // MICRO_BATCH * MICRO_BATCH
    steps: dict[int, list[int]] = {}
    for k in todo:
        steps.setdefault(k // window, []).append(k)
    return list(steps.values())


def _pilot(gen, sampler: ConditionSampler, fields, todo: list[int], seed: int, batch_size: int):
    """The first step's pairs, made before anything is written, so a gate they cannot pass leaves the
    folder untouched; ``_generate`` writes them as its first step."""
    _, condition_of = _case_draws(sampler, fields, seed)
    try:
        return sample_cases(gen, seed, _steps(todo, batch_size)[0], condition_of)
    except GateUnreachable as e:
        raise SynthaugError(f"{e}; nothing was written") from None


def _gate_summary(m: dict) -> dict:
    """The gate of a manifest with its draws and rejection rate over every gated case it lists."""
    gated = [e["gate"] for e in m["cases"].values() if "gate" in e]
    draws = sum(g["draws"] for g in gated)
    return {**m["generator"]["gate"], "cases": len(gated), "draws": draws,
            "rejection_rate": round(1 - len(gated) / draws, 4) if draws else 0.0}


def _generate(folder: Folder, gen, sampler: ConditionSampler, fields, m: dict, path: Path, todo: list[int],
              seed: int, batch_size: int, first=None) -> None:
    """Generate cases ``todo`` step by step: pending in the manifest, files, then done. ``sample_cases``
    computes whole blocks of MICRO_BATCH case indices, so the bytes never depend on the batch size, the
    shard or which cases happen to be missing. A step holds the todo cases of one aligned window of
    ``batch_size`` indices (rounded down to whole blocks from MICRO_BATCH up), so no block is computed
    twice; a batch size below MICRO_BATCH recomputes a block per step (MICRO_BATCH / batch_size times).
    ``first``: the first step's pairs, already made (``_pilot``)."""
    drawn, condition_of = _case_draws(sampler, fields, seed)
    threads = use_threads(None)  # as _expand set them
    with tqdm(total=len(todo), desc=f"expand {folder.root.name}", unit="case") as bar:
        for step, ks in enumerate(_steps(todo, batch_size)):
            batch = {}
            for k in ks:
                batch[folder.name(k)] = {"index": k, "seed": pair_seeds(seed, 1, start=k)[0],
                                         "conditions": condition_of(k).to_dict(), "size": list(drawn(k)[1]),
                                         "threads": threads}  # bf16 kernels block by thread count
            m["pending"].update(batch)
            _save(path, m)
            try:
                pairs = first if step == 0 and first is not None else sample_cases(gen, seed, ks, condition_of)
            except GateUnreachable as e:
                raise SynthaugError(f"{e}; the {len(m['cases'])} cases made before are kept (`synthaug revert "
                                    f"{folder.root}` removes them)") from None
            for (name, entry), pair in zip(batch.items(), pairs):
                if "background" in pair.meta:  # a real background keeps its case's own size
                    entry.update(size=list(pair.image.shape), background=pair.meta["background"],
                                 target={"label": pair.meta["label"], "box": pair.meta["box"]})
                image_path, label_path = folder.files(name)
                write_png(image_path, resize_image(pair.image, tuple(entry["size"])))
                write_png(label_path, resize_mask(pair.mask, tuple(entry["size"])))
                entry.update(image_sha256=sha256_file(image_path), label_sha256=sha256_file(label_path))
                for key in ("resampled", "gate", "descriptors"):  # the derived seed, the gate's score, the words
                    if key in pair.meta:
                        entry[key] = pair.meta[key]
                m["cases"][name] = m["pending"].pop(name)
            if "gate" in m["generator"]:
                m["gate"] = _gate_summary(m)
            _save(path, m)
            bar.update(len(batch))
