"""Add synthetic (image, mask) cases to an nnU-Net v2 raw dataset, and take them out again.

``expand`` makes a raw folder hold ``round(ratio x real)`` synthetic cases
``<prefix>NNNNN`` next to the real ones, so nnU-Net trains on them without any
change to nnU-Net itself. The design goals, in order:

1. Real cases are never modified or removed, and ``revert`` restores the
   folder (dataset.json, splits_final.json) byte for byte.
2. Synthetic cases never validate a model: splits_final.json folds cover
   real cases only; a synthetic case joins the train list of every fold, or,
   when it was built on a real case's background (``background="real"``),
   only of the folds that train on that real case.
3. Every call converges to one state: case k is a pure function of (real
   data, generator checkpoint, base seed, k), so a killed run resumes, a new
   ratio adds or drops the highest indices, shards merge into the unsharded
   result, and a repeated call rewrites nothing. The networks run fixed
   blocks of MICRO_BATCH case indices (``sample_cases``), so the bytes do not
   depend on the batch size or the shard either; they may differ across
   devices and torch/oneDNN builds, which a manifest cannot pin.

Crash safety comes from the order of writes: a case is recorded as pending in
the manifest before its files are written, files are written atomically, and
files are deleted before their manifest entries; so every synthetic file on
disk is listed in a manifest (see ``synthaug.io.manifest``). Concurrency safety
comes from ``manifest.folder_lock``: one process changes a folder at a time
(shards of one expansion excepted: each writes only its own part).
"""
from __future__ import annotations

import errno
import functools
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .data.conditions import MAX_RATIO, ConditionSampler, restrict
from .errors import SynthaugError
from .io import manifest as mf
from .io.images import resize_image, resize_mask, sha256_file, write_png
from .io.manifest import MANIFEST_NAME, Folder, name_index
from .io.nnunet_raw import DATASET_JSON
from .paths import DEFAULT_GENERATOR
from .gate import DEFAULT_TRIES, GateUnreachable, cached_judge, check_gate, judge_for, with_gate
from .pipelines.base import (MICRO_BATCH, case_block, check_device, check_steps, checkpoint_hash, pair_seeds,
                             sample_cases)
from .pipelines.registry import create_generator, resolve_checkpoint
from .pipelines.engines import check_engine, resolve_engine
from .threads import use_threads

BACKGROUNDS = ("synthetic", "real")
SPLITS_NAME = "splits_final.json"
FOLDS = 5  # nnU-Net's default cross-validation


# ----------------------------------------------------------------------------- generator identity
@dataclass
class GeneratorRef:
    """The generator a call asks for, identified without loading its weights (loading is slow
    and only needed when a case must actually be generated)."""

    path: Path
    identity: dict  # name, checkpoint_hash, steps, micro_batch, engine: what decides the generated pixels
    fields: frozenset  # Condition fields the generator uses
    engines: tuple = ("torch",)  # engines the generator supports

    @classmethod
    def resolve(cls, spec: str | Path, steps: int | None, engine: str | None = None,
                device: str = "cpu") -> "GeneratorRef":
        """``steps`` None means the checkpoint's default, recorded as that number: a run with
        ``--steps 20`` and one without agree when 20 is the default. ``engine`` is recorded as
        resolved (``torch`` or ``openvino-<version>``): the two round differently."""
        steps = check_steps(steps)
        gen_cls, path = resolve_checkpoint(spec)
        effective = steps if steps is not None else gen_cls.checkpoint_default_steps(path)
        identity = {"name": gen_cls.name, "checkpoint_hash": checkpoint_hash(path), "steps": effective,
                    "micro_batch": MICRO_BATCH, "engine": resolve_engine(engine, device, gen_cls.engines)}
        return cls(path, identity, gen_cls.checkpoint_conditions(path), gen_cls.engines)

    def load(self, device: str, threads: int | None = None):
        steps = self.identity["steps"]
        return create_generator(self.path, device=device, engine=self.identity["engine"].split("-")[0],
                                threads=threads, **({"steps": steps} if steps is not None else {}))


def _check_engine(folder: Folder, ref: GeneratorRef, asked: str | None, allow_change: bool) -> str | None:
    """Keep one engine per folder (their bf16 kernels round differently). Without an explicit engine a
    folder continues with the one it was expanded with (manifests before engines were recorded: torch);
    another engine is refused unless ``allow_change``. Returns the engine replaced, if any."""
    recorded = {m["generator"].get("engine", "torch") for _, m in folder.manifests()}
    now = ref.identity["engine"]
    if not recorded or recorded == {now}:
        return None
    if check_engine(asked) == "auto" and len(recorded) == 1:
        (was,) = recorded
        if was.split("-")[0] in ref.engines and was == resolve_engine(was.split("-")[0], "cpu", ref.engines):
            ref.identity["engine"] = was
            return None
    was = ", ".join(sorted(recorded))
    if not allow_change:
        first = sorted(recorded)[0]
        base = first.split("-")[0]
        how = (f"It used {base} bf16 kernels, which this CPU does not run natively: set SYNTHAUG_BF16=1 to "
               "continue exactly (slow)" if resolve_engine(base, "cpu", ref.engines) == first + "-fp32"
               else f"Pass --engine {base} to continue")
        raise SynthaugError(f"{folder.root} was expanded with engine {was} and this call would use {now}; their "
                            f"pixels differ by a few grey levels, so one folder would mix them. {how}, "
                            f"--allow-engine-change to mix them, or `synthaug revert {folder.root}` first")
    return was


def _check_writable(paths) -> None:
    """Fail before the first write rather than leave a half-expanded folder behind."""
    for p in paths:
        if p.exists() and not os.access(p, os.W_OK):
            raise SynthaugError(f"{p} is not writable; nothing was changed. Fix its permissions or copy the dataset")


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
           gate_tries: int = DEFAULT_TRIES) -> dict:
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
                       gate=(gate_dice, judge, gate_tries) if gate_dice is not None else None)


def _expand(raw_dataset, ratio, generator, seed, batch_size, device, steps, shard, dry_run, background,
            engine=None, threads=None, allow_engine_change=False, gate=None) -> dict:
    folder = Folder.load(raw_dataset)
    ref = GeneratorRef.resolve(generator, steps, engine, device)
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
            from .data.datasets import PairDataset
            from .data.mix import with_background

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
    if shard is None:
        if splits_path:
            _backup_splits(m, splits_path, plan.path)
            write_splits_file(splits_path, folder.real, list(m["cases"]), backgrounds=backgrounds_of(m))
        note = _write_dataset_json(folder, m)
        if note:
            report["notes"] = [note]
    return report


@contextmanager
def _write_errors(root, command: str):
    """A full disk (or a mount gone read-only) mid-run is one line, not a traceback. The folder
    stays consistent (manifest before files, atomic writes), so the same command resumes."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f" while writing {e.filename}" if e.filename else ""
        raise SynthaugError(f"{e.strerror or os.strerror(e.errno)}{where}; {root} was left consistent: free "
                            f"space and run `synthaug {command}` again to finish"
                            + ("" if command == "revert" else f", or `synthaug revert {root}`")) from None


def _save(path: Path, m: dict) -> None:
    m["cases"] = dict(sorted(m["cases"].items(), key=lambda kv: name_index(kv[0])))
    mf.save_manifest(path, m)


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


def _gate_identity(folder: Folder, ref: GeneratorRef, gate, dry_run: bool) -> Path | None:
    """Put the gate (threshold, tries, judge hash) in the generator identity: other pixels, another
    expansion. The judge is the folder's cached one, trained now if missing (a dry run never trains:
    it then takes the judge an earlier expansion recorded)."""
    dice, judge, tries = gate
    path = Path(judge) if judge else (cached_judge(folder.root) if dry_run else judge_for(folder.root))
    recorded = [m["generator"].get("gate", {}).get("judge") for _, m in folder.manifests()]
    identity = checkpoint_hash(path) if path else next((r for r in recorded if r), "not trained yet")
    ref.identity["gate"] = {"dice": float(dice), "tries": int(tries), "judge": identity}
    return path


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
                for key in ("resampled", "gate"):  # which derived seed made these pixels, and the gate's score
                    if key in pair.meta:
                        entry[key] = pair.meta[key]
                m["cases"][name] = m["pending"].pop(name)
            if "gate" in m["generator"]:
                m["gate"] = _gate_summary(m)
            _save(path, m)
            bar.update(len(batch))


def _write_dataset_json(folder: Folder, m: dict) -> str | None:
    """numTraining = real + synthetic; with no synthetic case the original bytes come back."""
    data, note = _dataset_json_bytes(folder, m, len(folder.real) + len(m["cases"]))
    mf.write_if_changed(folder.root / DATASET_JSON, data)
    return note


def _dataset_json_bytes(folder: Folder, m: dict, n: int) -> tuple[bytes, str | None]:
    """The dataset.json to write for ``n`` training cases, and a note when it is not the stored original.

    synthaug only ever changes numTraining, so any other difference from the original is the
    user's edit: it is kept (only numTraining is set) and said, never overwritten by the original.
    """
    original = mf.decode_bytes(m["original_dataset_json"])
    orig, current = json.loads(original), folder.raw.dataset_json
    edited = sorted(k for k in set(orig) | set(current) if k != "numTraining" and orig.get(k) != current.get(k))
    if edited:
        return _dump_dataset_json({**current, "numTraining": n}), (
            f"dataset.json was edited after expand ({', '.join(edited)}): your edits were kept, "
            f"only numTraining was set (to {n})")
    if orig.get("numTraining") == n:
        return original, None
    return _dump_dataset_json({**orig, "numTraining": n}), None


def _dump_dataset_json(dj: dict) -> bytes:
    return (json.dumps(dj, indent=4) + "\n").encode()


def _backup_splits(m: dict, splits_path: Path, manifest_path: Path) -> None:
    """Keep the splits file expand is about to replace (None: there was none) so revert restores it."""
    backups = m["splits_backup"] or {}
    if str(splits_path) not in backups:
        backups[str(splits_path)] = mf.encode_bytes(splits_path.read_bytes()) if splits_path.is_file() else None
        m["splits_backup"] = backups
        _save(manifest_path, m)


# ----------------------------------------------------------------------------- splits
def _check_folds(folds: int, n_real: int) -> None:
    if not 2 <= folds <= n_real:
        raise SynthaugError(f"cannot make {folds} folds from {n_real} real cases (need 2 <= folds <= real cases)")


def backgrounds_of(manifest: dict | None) -> dict[str, str]:
    """Synthetic case -> the real case whose background it was built on (only such cases)."""
    cases = (manifest or {}).get("cases", {})
    return {n: e["background"] for n, e in cases.items() if e.get("background")}


def crossval_splits(real: list[str], synthetic: list[str], folds: int = FOLDS,
                    backgrounds: dict[str, str] | None = None) -> list[dict]:
    """nnU-Net's own seeded k-fold over the sorted real cases (as its trainer would split them).
    A synthetic case never validates; it joins every fold's train list, except one built on a real
    case's background (``backgrounds``), which joins only the folds that train on that case: a fold
    validating X must not have seen X's tissue."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    _check_folds(folds, len(real))
    backgrounds = backgrounds or {}
    splits = generate_crossval_split(sorted(real), n_splits=folds)
    out = []
    for s in splits:
        train = [str(c) for c in s["train"]]
        seen = set(train)
        out.append({"train": train + [c for c in synthetic if c not in backgrounds or backgrounds[c] in seen],
                    "val": [str(c) for c in s["val"]]})
    return out


def write_splits_file(path: Path, real: list[str], synthetic: list[str], folds: int = FOLDS,
                      backgrounds: dict[str, str] | None = None) -> bool:
    data = (json.dumps(crossval_splits(real, synthetic, folds, backgrounds), indent=4) + "\n").encode()
    return mf.write_if_changed(Path(path), data)


def write_splits(raw_dataset, out=None, folds: int = FOLDS) -> Path:
    """Write splits_final.json for ``raw_dataset`` (default: in $nnUNet_preprocessed/DatasetNNN_Name/)."""
    with mf.folder_lock(raw_dataset, "splits", read_only=True):  # never from a half-changed folder
        return _write_splits(raw_dataset, out, folds)


def _write_splits(raw_dataset, out, folds: int) -> Path:
    folder = Folder.load(raw_dataset)
    if out is None:
        pre = folder.preprocessed_dir()
        if pre is None:
            raise SynthaugError("nnUNet_preprocessed is not set; set it or pass --out")
        out = pre / SPLITS_NAME
    synthetic = list(folder.main["cases"]) if folder.main else []
    write_splits_file(Path(out), folder.real, synthetic, folds, backgrounds=backgrounds_of(folder.main))
    return Path(out)


# ----------------------------------------------------------------------------- revert
def revert(raw_dataset, rebuild_manifest: bool = False) -> dict:
    """Delete every synthetic case and restore dataset.json and splits_final.json exactly.

    Exactly, unless the folder changed since expand: a dataset.json edited since keeps its edits
    and gets numTraining = real cases; a real case added by hand is counted in numTraining; both
    are said in the report's ``notes``. ``rebuild_manifest`` is for a folder whose manifest was
    lost: see ``_rebuild_manifest``.
    """
    with mf.folder_lock(raw_dataset, "revert"), _write_errors(raw_dataset, "revert"):
        notes = _rebuild_manifest(Path(raw_dataset)) if rebuild_manifest else []
        report = _revert(raw_dataset)
        notes += report.pop("notes", [])
        return {**report, "notes": notes} if notes else report


def _revert(raw_dataset) -> dict:
    folder = Folder.load(raw_dataset)
    if not folder.manifests():
        raise SynthaugError(f"{folder.root} has no synthaug manifest: there is nothing to revert")
    folder.check_unlisted()
    notes = []
    backups = (folder.main or {}).get("splits_backup") or {}
    relative = sorted(p for p in backups if not Path(p).is_absolute())
    backups = {p: c for p, c in backups.items() if p not in relative}
    for p in relative:  # older synthaug stored $nnUNet_preprocessed as given: its cwd is unknown
        notes.append(f"splits file {p} was recorded as a relative path, so it was not restored: restore or "
                     "delete it by hand")
    _check_writable([folder.root, folder.root / "imagesTr", folder.root / "labelsTr"]
                    + ([folder.root / DATASET_JSON] if folder.main else []) + [Path(p).parent for p in backups])
    if folder.main:  # fails (having deleted nothing) if the original cannot be read
        data, note = _dataset_json_bytes(folder, folder.main, len(folder.real))
        notes += [note] if note else []
        added = sorted(set(folder.real) - set(folder.main["real_cases"]))
        if added and not note:
            notes.append(f"real case(s) {', '.join(added[:5])} were added after expand: numTraining was set to "
                         f"{len(folder.real)}, the real cases in the folder, not restored to the original")
    removed = folder.delete(folder.listed())
    if folder.main:
        mf.write_if_changed(folder.root / DATASET_JSON, data)
    for p, content in backups.items():
        if content is not None:
            mf.write_if_changed(Path(p), mf.decode_bytes(content))
        elif Path(p).exists():
            Path(p).unlink()
    for path, _ in reversed(folder.manifests()):  # the main manifest goes last: a killed revert can rerun
        path.unlink()
    report = {"removed": removed, "real_cases": len(folder.real), "dataset_json": str(folder.root / DATASET_JSON),
              "splits_restored": sorted(backups)}
    return {**report, "notes": notes} if notes else report


def _rebuild_manifest(root: Path) -> list[str]:
    """For a folder whose manifest was lost: write one listing the cases named like synthaug's
    (``synth_NNNNN``; only on the user's explicit request, as names are all there is to go on),
    so the ordinary revert deletes them. dataset.json's original bytes went with the manifest:
    the current ones are kept with numTraining set to the real cases."""
    if (root / MANIFEST_NAME).exists() or mf.part_paths(root):
        raise SynthaugError(f"{root} has a synthaug manifest; run `synthaug revert {root}` without --rebuild-manifest")
    folder = Folder.load(root, orphans_ok=True)
    orphans = mf.orphans(root, folder.raw.file_ending)
    if not orphans:
        raise SynthaugError(f"{root} has no synthaug manifest and no case named like a synthetic one "
                            f"({folder.prefix}NNNNN): there is nothing to revert")
    strays = [n for n in orphans if not mf.name_re(folder.prefix).fullmatch(n)]
    if strays:  # synthaug would have named its cases <prefix>NNNNN here: these are someone else's
        raise SynthaugError(f"{root}: {', '.join(strays[:5])} do not carry the prefix {folder.prefix} synthaug "
                            "uses in this folder, so they cannot be told apart from real cases; nothing was "
                            "changed. Move them out by hand")
    current = (root / DATASET_JSON).read_bytes()
    real_count = len(folder.real)
    original = current if folder.raw.dataset_json["numTraining"] == real_count else \
        _dump_dataset_json({**folder.raw.dataset_json, "numTraining": real_count})
    m = mf.new_manifest(generator={"name": None, "checkpoint_hash": None, "steps": None}, seed=0, ratio=0.0,
                        prefix=folder.prefix, real_cases=folder.real, dataset_json_bytes=original)
    m.update(rebuilt=True, pending={n: {"index": name_index(n)} for n in orphans})
    _save(root / MANIFEST_NAME, m)  # from here on a killed run is finished by a plain `synthaug revert`
    notes = [f"no manifest: {len(orphans)} case(s) named {folder.prefix}NNNNN were taken as synthetic and deleted; "
             "dataset.json's original bytes were lost with the manifest, so the current file was kept "
             f"with numTraining set to the {real_count} real cases"]
    splits = folder.preprocessed_dir()
    splits = splits / SPLITS_NAME if splits else None
    if splits and splits.is_file() and any(n.encode() in splits.read_bytes() for n in orphans):
        notes.append(f"{splits} lists the deleted cases and its original is unknown: rewrite it with "
                     f"`synthaug splits {root}` or delete it")
    return notes
