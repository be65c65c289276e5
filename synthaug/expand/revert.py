"""``revert``: delete every synthetic case and restore dataset.json and the splits byte for byte."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ..errors import SynthaugError
from ..io import manifest as mf
from ..io.manifest import MANIFEST_NAME, Folder, name_index
from ..io.nnunet_raw import DATASET_JSON
from .files import _check_writable, _dataset_json_bytes, _dump_dataset_json, _save, _write_errors
from .splits import SPLITS_NAME


def revert(raw_dataset, rebuild_manifest: bool = False, preprocessed: bool = False) -> dict:
    """Delete every synthetic case and restore dataset.json and splits_final.json exactly.

    Exactly, unless the folder changed since expand: a dataset.json edited since keeps its edits
    and gets numTraining = real cases; a real case added by hand is counted in numTraining; both
    are said in the report's ``notes``. ``rebuild_manifest`` is for a folder whose manifest was
    lost: see ``_rebuild_manifest``. ``preprocessed`` also removes ``$nnUNet_preprocessed/<this
    folder's name>`` (which holds the synthetic cases nnU-Net preprocessed) and nothing else.
    """
    target = preprocessed_target(Path(raw_dataset)) if preprocessed else None  # checked before any change
    with mf.folder_lock(raw_dataset, "revert"), _write_errors(raw_dataset, "revert"):
        notes = _rebuild_manifest(Path(raw_dataset)) if rebuild_manifest else []
        report = _revert(raw_dataset)
        notes += report.pop("notes", [])
        if preprocessed:
            report["preprocessed_removed"] = _remove_preprocessed(target)
            if report["preprocessed_removed"] is None:
                notes.append(f"{target} did not exist: nothing to remove there")
        return {**report, "notes": notes} if notes else report


def preprocessed_target(root: Path) -> Path:
    """``$nnUNet_preprocessed/<raw folder name>``, checked: the variable is set, the folder (if any) is a
    folder or a link to one, and its parent can be written (so revert never stops half way)."""
    base = os.environ.get("nnUNet_preprocessed")
    if not base:
        raise SynthaugError("--preprocessed: nnUNet_preprocessed is not set, so its dataset folder is unknown; "
                            "nothing was changed. Export it (as for nnUNetv2_plan_and_preprocess) or drop the option")
    target = Path(os.path.abspath(base)) / Path(os.path.abspath(root)).name
    if (target.exists() or target.is_symlink()) and not (target.is_dir() or target.is_symlink()):
        raise SynthaugError(f"--preprocessed: {target} is not a folder; nothing was changed")
    if target.exists() and not os.access(target.parent, os.W_OK):
        raise SynthaugError(f"--preprocessed: {target.parent} is not writable; nothing was changed")
    return target


def _remove_preprocessed(target: Path) -> str | None:
    """Remove ``target`` (a link: the link alone): renamed away first, so a killed removal leaves no
    half-deleted dataset under its nnU-Net name."""
    if target.is_symlink():
        target.unlink()
        return str(target)
    if not target.is_dir():
        return None
    doomed = target.with_name(f".{target.name}.synthaug-removing-{uuid.uuid4().hex[:8]}")
    os.rename(target, doomed)
    shutil.rmtree(doomed)
    return str(target)


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
