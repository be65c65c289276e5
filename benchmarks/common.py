"""What every benchmark shares: the BUSI split (with a validation part carved from train),
STU, and writing results as JSON + Markdown next to the command that produced them."""
from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from synthaug.data.datasets import PairDataset
from synthaug.errors import SynthaugError
from synthaug.paths import data_root

RESULTS = Path(__file__).resolve().parent / "results"
PENDING = RESULTS / "pending"  # finished runs no report holds yet, kept across machines (benchmarks/keep_runs.py)


def pending_runs(results: Path = RESULTS) -> list[Path]:
    """The pending-run files of a results folder, for ``seg.py --import-runs``."""
    return sorted((results / PENDING.name).glob("*.json"))


def busi_sets(size: int = 128, val_fraction: float = 0.2, seed: int = 0, transform=None) -> dict:
    """{"train", "val", "test" (None while the BUSI test images are withheld), "test_name"}.

    "val" is a stratified part of the official train split; when the test
    images are absent, it is the internal test set and is labelled as such.
    """
    root = data_root() / "BUSI"
    full = PairDataset.from_busi(root, split="train", size=size)
    idx_train, idx_val = train_test_split(np.arange(len(full)), test_size=val_fraction, stratify=full.labels,
                                          random_state=seed)
    try:
        test = PairDataset.from_busi(root, split="test", size=size)
    except SynthaugError:  # the test images are withheld: no case to read
        test = None
    return {
        "train": PairDataset([full.records[i] for i in idx_train], transform=transform),
        "val": PairDataset([full.records[i] for i in idx_val]),
        "test": test,
        "internal_test_name": "BUSI test split" if test else "BUSI validation part of train (test withheld)",
    }


def busi_subset_folder(raw_parent: Path, dataset_id: int, name: str, train_ids: set[str], test_ids=frozenset(),
                       size: int | None = None, description: str = "") -> Path:
    """BUSI train-split cases picked by id as the raw folder ``raw_parent/DatasetNNN_name`` (``train_ids`` in
    imagesTr, ``test_ids`` in imagesTs; case ids kept, so a record names exactly the cases it saw). Written
    once, then reused: a benchmark's subset stays the same folder across reruns."""
    from synthaug.io.public_sets import iter_busi, raw_dataset_name, write_raw_dataset

    folder = Path(raw_parent) / raw_dataset_name(dataset_id, name)
    if (folder / "dataset.json").is_file():
        return folder
    cases = ({**c, "split": "train" if c["case_id"] in train_ids else "test"}
             for c in iter_busi(data_root() / "BUSI", "train") if c["case_id"] in set(train_ids) | set(test_ids))
    return write_raw_dataset(cases, raw_parent, dataset_id, name, source="BUSI", size=size, description=description)


def stu_set(size: int = 128) -> PairDataset:
    return PairDataset.from_stu(data_root() / "STU", size=size)


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_results(name: str, payload: dict, markdown: str, out_dir: Path = RESULTS) -> Path:
    """``results/<name>.json`` and ``results/<name>.md``, both stamped with the command."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"command": command_line(), "date": time.strftime("%Y-%m-%d %H:%M"), **payload}
    for suffix, text in ((".json", json.dumps(payload, indent=2, default=float) + "\n"),
                         (".md", f"{markdown}\n\nProduced by:\n\n```\n{payload['command']}\n```\n")):
        tmp = out_dir / f".{name}{suffix}.tmp"  # a kill mid-write leaves the previous report whole
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_dir / f"{name}{suffix}")
    return out_dir / f"{name}.json"


def area_stats(masks, labels=None) -> dict:
    """Lesion area as a fraction of the image: mean, std and quantiles (and the mean per tumour type when
    ``labels`` are given)."""
    a = np.array([m.mean() for m in masks])
    out = {"mean": float(a.mean()), "std": float(a.std()), "q10": float(np.quantile(a, 0.1)),
           "median": float(np.median(a)), "q90": float(np.quantile(a, 0.9))}
    if labels is not None:
        labels = [str(label) for label in labels]
        out["by_class"] = {k: float(a[[label == k for label in labels]].mean()) for k in sorted(set(labels))}
    return out


def matched_area(real: dict, labels) -> float | None:
    """The real mean lesion area at the tumour-type mix of ``labels`` (None without per-type real areas).

    Why: benchmarks generate benign and malignant pairs half and half, while BUSI train holds two benign
    cases per malignant one and malignant lesions are twice as large, so the plain real mean is no fair target.
    """
    by = real.get("by_class") or {}
    labels = [str(label) for label in labels]
    if not labels or any(label not in by for label in labels):
        return None
    return float(np.mean([by[label] for label in labels]))


def real_area_of(row: dict) -> float:
    """A measurement row's real area reference: type-matched when it was measured, else the plain mean."""
    return row.get("area_real_matched") or row["area_real"]["mean"]


def sampler_options(items) -> dict:
    """A generator's keywords from the command line, numbers parsed: ``["mask_guidance=4", "scheduler=ddim"]``
    or ``"mask_guidance=4,scheduler=ddim"`` -> ``{"mask_guidance": 4, "scheduler": "ddim"}``; true / false
    are booleans."""
    if isinstance(items, str):
        items = items.split(",")
    out = {}
    for item in filter(None, (i.strip() for i in items)):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"option {item!r}: write KEY=VALUE, e.g. mask_guidance=4")
        if value.strip().lower() in ("true", "false"):  # a flag (match_margin=false must not read as set)
            out[key.strip()] = value.strip().lower() == "true"
            continue
        try:
            out[key.strip()] = float(value) if "." in value else int(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out
