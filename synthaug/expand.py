"""Add synthetic (image, mask) cases to an nnU-Net v2 raw dataset, and take them out again.

``expand`` makes a raw folder hold ``round(ratio x real)`` synthetic cases
``<prefix>NNNNN`` next to the real ones, so nnU-Net trains on them without any
change to nnU-Net itself. The design goals, in order:

1. Real cases are never modified or removed, and ``revert`` restores the
   folder (dataset.json, splits_final.json) byte for byte.
2. Synthetic cases never validate a model: splits_final.json folds cover
   real cases only and every synthetic case joins every fold's train list.
3. Every call converges to one state: case k is a pure function of (real
   data, generator checkpoint, base seed, k), so a killed run resumes, a new
   ratio adds or drops the highest indices, shards merge into the unsharded
   result, and a repeated call rewrites nothing.

Crash safety comes from the order of writes: a case is recorded as pending in
the manifest before its files are written, files are written atomically, and
files are deleted before their manifest entries; so every synthetic file on
disk is listed in a manifest (see ``synthaug.io.manifest``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .data.conditions import ConditionSampler, restrict
from .errors import SynthaugError
from .io import manifest as mf
from .io.images import resize_image, resize_mask, sha256_file, write_png
from .io.manifest import Folder, name_index
from .io.nnunet_raw import DATASET_JSON
from .paths import DEFAULT_GENERATOR
from .pipelines.base import checkpoint_hash, create_generator, pair_seeds, resolve_checkpoint

MAX_RATIO = 10
SPLITS_NAME = "splits_final.json"
FOLDS = 5  # nnU-Net's default cross-validation


# ----------------------------------------------------------------------------- generator identity
@dataclass
class GeneratorRef:
    """The generator a call asks for, identified without loading its weights (loading is slow
    and only needed when a case must actually be generated)."""

    path: Path
    identity: dict  # name, checkpoint_hash, steps: what decides the generated pixels
    fields: frozenset  # Condition fields the generator uses

    @classmethod
    def resolve(cls, spec: str | Path, steps: int | None) -> "GeneratorRef":
        gen_cls, path = resolve_checkpoint(spec)
        identity = {"name": gen_cls.name, "checkpoint_hash": checkpoint_hash(path), "steps": steps}
        return cls(path, identity, gen_cls.checkpoint_conditions(path))

    def load(self, device: str):
        steps = self.identity["steps"]
        return create_generator(self.path, device=device, **({"steps": steps} if steps is not None else {}))


def _check_writable(paths) -> None:
    """Fail before the first write rather than leave a half-expanded folder behind."""
    for p in paths:
        if p.exists() and not os.access(p, os.W_OK):
            raise SynthaugError(f"{p} is not writable; nothing was changed. Fix its permissions or copy the dataset")


def _check_args(ratio, seed, batch_size, shard) -> None:
    if not (isinstance(ratio, (int, float)) and 0 < ratio <= MAX_RATIO):  # NaN fails every comparison
        raise SynthaugError(f"ratio must be in (0, {MAX_RATIO}], got {ratio}")
    if seed < 0:
        raise SynthaugError(f"seed must be >= 0, got {seed}")
    if batch_size < 1:
        raise SynthaugError(f"batch size must be >= 1, got {batch_size}")
    if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
        raise SynthaugError(f"shard {shard}: need (i, n) with 0 <= i < n")


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
           steps: int | None = None, shard: tuple[int, int] | None = None, dry_run: bool = False) -> dict:
    """Bring ``raw_dataset`` to ``round(ratio x real)`` synthetic cases; returns a report dict.

    With ``shard=(i, n)`` only cases with index % n == i are generated, into a
    part manifest, leaving dataset.json alone; a later call without ``shard``
    merges the parts, fills any gap and updates dataset.json and the splits.
    """
    _check_args(ratio, seed, batch_size, shard)
    folder = Folder.load(raw_dataset)
    ref = GeneratorRef.resolve(generator, steps)
    identity = {"generator": ref.identity, "seed": int(seed), "prefix": folder.prefix, "real_cases": folder.real}
    for path, m in folder.manifests():
        mf.check_identity(m, identity, path)
    n_target = int(round(ratio * len(folder.real)))
    targets = [k for k in range(n_target) if shard is None or k % shard[1] == shard[0]]
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
                    + ([splits_dir] if splits_path else []))
    if plan.todo:  # whatever can fail on bad metadata or a broken checkpoint fails before the first write
        sampler, gen = ConditionSampler.from_raw(folder.raw, folder.real), ref.load(device)
    m = (folder.main if shard is None else folder.parts.get(plan.path)) or mf.new_manifest(
        generator=ref.identity, seed=seed, ratio=ratio, prefix=folder.prefix, real_cases=folder.real,
        dataset_json_bytes=(folder.root / DATASET_JSON).read_bytes(), shard=shard)
    # cases still to make stay listed as pending: their half-written files must never look unlisted
    m.update(ratio=float(ratio), cases=plan.keep, pending={folder.name(k): {"index": k} for k in plan.todo})
    folder.delete(plan.stale, temporaries=shard is None)
    _save(plan.path, m)
    if shard is None:
        for part in folder.parts:
            part.unlink()
    if plan.todo:
        _generate(folder, gen, sampler, ref.fields, m, plan.path, plan.todo, seed, batch_size)
    if shard is None:
        if splits_path:
            _backup_splits(m, splits_path, plan.path)
            write_splits_file(splits_path, folder.real, list(m["cases"]))
        _write_dataset_json(folder, m)
    return report


def _save(path: Path, m: dict) -> None:
    m["cases"] = dict(sorted(m["cases"].items(), key=lambda kv: name_index(kv[0])))
    mf.save_manifest(path, m)


def _generate(folder: Folder, gen, sampler: ConditionSampler, fields, m: dict, path: Path, todo: list[int],
              seed: int, batch_size: int) -> None:
    """Generate cases ``todo`` batch by batch: pending in the manifest, files, then done."""
    with tqdm(total=len(todo), desc=f"expand {folder.root.name}", unit="case") as bar:
        for start in range(0, len(todo), batch_size):
            batch, conds = {}, []
            for k in todo[start : start + batch_size]:
                s = pair_seeds(seed, 1, start=k)[0]
                cond, size = sampler.draw(s)
                conds.append(restrict(cond, fields))
                batch[folder.name(k)] = {"index": k, "seed": s, "conditions": conds[-1].to_dict(), "size": list(size)}
            m["pending"].update(batch)
            _save(path, m)
            pairs = gen.sample(seeds=[e["seed"] for e in batch.values()], conditions=conds, batch_size=len(batch))
            for (name, entry), pair in zip(batch.items(), pairs):
                image_path, label_path = folder.files(name)
                write_png(image_path, resize_image(pair.image, tuple(entry["size"])))
                write_png(label_path, resize_mask(pair.mask, tuple(entry["size"])))
                entry.update(image_sha256=sha256_file(image_path), label_sha256=sha256_file(label_path))
                m["cases"][name] = m["pending"].pop(name)
            _save(path, m)
            bar.update(len(batch))


def _write_dataset_json(folder: Folder, m: dict) -> None:
    """numTraining = real + synthetic; with no synthetic case the original bytes come back."""
    original = mf.decode_bytes(m["original_dataset_json"])
    data = original
    if m["cases"]:
        dj = json.loads(original)
        dj["numTraining"] = len(folder.real) + len(m["cases"])
        data = (json.dumps(dj, indent=4) + "\n").encode()
    mf.write_if_changed(folder.root / DATASET_JSON, data)


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


def crossval_splits(real: list[str], synthetic: list[str], folds: int = FOLDS) -> list[dict]:
    """nnU-Net's own seeded k-fold over the sorted real cases (as its trainer would split them);
    every synthetic case is appended to every train list and never validates."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    _check_folds(folds, len(real))
    splits = generate_crossval_split(sorted(real), n_splits=folds)
    return [{"train": [str(c) for c in s["train"]] + list(synthetic), "val": [str(c) for c in s["val"]]}
            for s in splits]


def write_splits_file(path: Path, real: list[str], synthetic: list[str], folds: int = FOLDS) -> bool:
    data = (json.dumps(crossval_splits(real, synthetic, folds), indent=4) + "\n").encode()
    return mf.write_if_changed(Path(path), data)


def write_splits(raw_dataset, out=None, folds: int = FOLDS) -> Path:
    """Write splits_final.json for ``raw_dataset`` (default: in $nnUNet_preprocessed/DatasetNNN_Name/)."""
    folder = Folder.load(raw_dataset)
    if out is None:
        pre = folder.preprocessed_dir()
        if pre is None:
            raise SynthaugError("nnUNet_preprocessed is not set; set it or pass --out")
        out = pre / SPLITS_NAME
    synthetic = list(folder.main["cases"]) if folder.main else []
    write_splits_file(Path(out), folder.real, synthetic, folds)
    return Path(out)


# ----------------------------------------------------------------------------- revert
def revert(raw_dataset) -> dict:
    """Delete every synthetic case and restore dataset.json and splits_final.json exactly."""
    folder = Folder.load(raw_dataset)
    if not folder.manifests():
        raise SynthaugError(f"{folder.root} has no synthaug manifest: there is nothing to revert")
    folder.check_unlisted()
    backups = (folder.main or {}).get("splits_backup") or {}
    _check_writable([folder.root, folder.root / "imagesTr", folder.root / "labelsTr"]
                    + [Path(p).parent for p in backups])
    removed = folder.delete(folder.listed())
    if folder.main:
        mf.write_if_changed(folder.root / DATASET_JSON, mf.decode_bytes(folder.main["original_dataset_json"]))
    for p, content in backups.items():
        if content is not None:
            mf.write_if_changed(Path(p), mf.decode_bytes(content))
        elif Path(p).exists():
            Path(p).unlink()
    for path, _ in reversed(folder.manifests()):  # the main manifest goes last: a killed revert can rerun
        path.unlink()
    return {"removed": removed, "real_cases": len(folder.real), "dataset_json": str(folder.root / DATASET_JSON),
            "splits_restored": sorted(backups)}
