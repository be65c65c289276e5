"""The writes expand and revert share: permission checks, disk-full errors, the manifest, dataset.json, splits backups."""
from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import SynthaugError
from ..io import manifest as mf
from ..io.manifest import Folder, name_index
from ..io.nnunet_raw import DATASET_JSON


def _check_writable(paths) -> None:
    """Fail before the first write rather than leave a half-expanded folder behind."""
    for p in paths:
        if p.exists() and not os.access(p, os.W_OK):
            raise SynthaugError(f"{p} is not writable; nothing was changed. Fix its permissions or copy the dataset")


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


PREVIEW_CASES = 16


def preview_path(root: Path) -> Path:
    """Beside the raw folder, never in it: ``revert`` restores the folder byte for byte."""
    return root.parent / f"synthaug_preview_{root.name}.png"  # no DatasetNNN_ prefix: nothing takes it for a dataset


def write_preview(folder: Folder, names: list[str], cases: dict) -> Path:
    """A grid of the first PREVIEW_CASES of ``names`` (image, mask outline, name and type), written atomically."""
    import uuid

    from ..data.datasets import read_label_png
    from ..io.images import read_gray
    from ..preview import save_grid

    names = names[:PREVIEW_CASES]
    images, masks, titles = [], [], []
    for n in names:
        image_path, label_path = folder.files(n)
        images.append(read_gray(image_path))
        masks.append(read_label_png(label_path))
        label = (cases.get(n, {}).get("conditions") or {}).get("label")
        titles.append(f"{n[-5:]} {label or ''}".strip())
    path = preview_path(folder.root)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp.png")
    try:
        save_grid(tmp, images, masks, titles)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
