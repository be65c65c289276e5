"""nnU-Net folds over the real cases only; synthetic cases train, never validate."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import SynthaugError
from ..io import manifest as mf
from ..io.manifest import Folder

SPLITS_NAME = "splits_final.json"
FOLDS = 5  # nnU-Net's default cross-validation


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
