"""Synthetic (image, mask) pairs turned into nnU-Net preprocessed training cases.

``write_synthetic_cases`` is the synthaug half of ``nnUNetTrainerSynthAug``:
it picks the pairs with ``SyntheticMix`` (so the ratio, the seeding, the
generator's conditions and the resizing are exactly those smp/timm users get)
and preprocesses each one with the plans' own preprocessor (``run_case_save``,
the call ``nnUNetv2_preprocess`` makes for every real case), so a synthetic
case is normalised, cropped, resampled and stored exactly like a real one.

The cases go to a folder of their own, never into the shared
``$nnUNet_preprocessed/DatasetNNN_Name/<plans>_<config>`` folder: nnU-Net
lists that folder to make its default splits and for ``fold all``, so a
synthetic case there could end up validating a model.

This module is imported both as ``integrations.nnunet.synthetic_cases`` and,
by nnU-Net's trainer search through ``nnUNet_extTrainer``, as a top-level
module: it must only use absolute imports.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from synthaug.data import PairDataset
from synthaug.mix import SyntheticMix
from synthaug.data.datasets import LABEL_NAMES
from synthaug.errors import SynthaugError
from synthaug.io.images import write_json, write_png
from synthaug.io.manifest import MANIFEST_NAME, part_paths
from synthaug.pipelines.base import GENERATOR_INFO
from synthaug.pipelines.registry import create_generator

RECORD = "synthaug_train.json"
NAME = "synthaug_{:05d}"  # synthetic case names inside the folder; identifiers are absolute paths


def open_source(spec: str | Path, device: str = "cpu"):
    """A folder of pairs (``synthaug sample`` output or an expanded raw folder) is passed on as a
    path, which ``SyntheticMix`` opens as a ``PairBank``; anything else (a registered name or a
    checkpoint folder, which holds ``synthaug.json``) is loaded as a generator."""
    path = Path(spec)
    if path.is_dir() and not (path / GENERATOR_INFO).is_file():
        return path
    return create_generator(spec, device=device)


def refuse_expanded_raw(raw_dataset) -> None:
    """Raise when ``synthaug expand`` has filled ``raw_dataset``: its synthetic cases look real to nnU-Net.

    This trainer treats every preprocessed case as real: it would count expanded
    synthetic cases as real (so they would reach validation folds and condition
    the generator), then add synthetic cases on top of them.
    """
    raw_dataset = Path(raw_dataset)
    found = [p.name for p in [raw_dataset / MANIFEST_NAME, *part_paths(raw_dataset)] if p.is_file()]
    if found:
        raise SynthaugError(
            f"{raw_dataset} was expanded by `synthaug expand` ({found[0]}): nnUNetTrainerSynthAug would take its "
            "synthetic cases for real ones (validation folds included) and add more on top. Either train it with "
            "plain `nnUNetv2_train` (the expand route, after `synthaug splits`), or run "
            f"`synthaug revert {raw_dataset}`, delete $nnUNet_preprocessed/{raw_dataset.name}, rerun "
            "`nnUNetv2_plan_and_preprocess` and then use this trainer")


def _median_size(real: PairDataset) -> tuple[int, int]:
    shapes = np.array([r.image.shape for r in real.records])
    return tuple(int(v) for v in np.median(shapes, axis=0).round())


def write_synthetic_cases(out_dir, raw_dataset, real_keys, source, ratio: float, seed: int, plans_manager,
                          configuration_manager, dataset_json: dict, device: str = "cpu", log=print,
                          descriptors: dict | None = None) -> list[str]:
    """Preprocess ``round(ratio x len(real_keys))`` synthetic cases into ``out_dir``; return their identifiers.

    ``real_keys`` are the real training cases of the fold (the raw folder
    ``raw_dataset`` must hold them): the number of synthetic cases follows
    from them, a generator is conditioned on their tumour types and lesion
    boxes only (never on a validation case), and pairs are resized to their
    common size (their median size when sizes differ, so synthetic lesions are
    not drawn at a different scale from real ones).

    Identifiers are the absolute paths of the cases without file ending.
    nnU-Net's datasets load a case from ``join(folder, identifier + ending)``
    and ``join`` drops ``folder`` for an absolute identifier, so one plain
    nnU-Net dataset object serves real and synthetic cases: no custom class
    has to be pickled into data-augmentation workers.

    ``out_dir`` also keeps the PNG pairs the preprocessor read (imagesTr/,
    labelsTr/) and ``synthaug_train.json``; a rerun with the same settings
    (e.g. ``nnUNetv2_train --c``) reuses the folder instead of generating
    again. Delete the folder to force a rebuild after changing a source in place.
    ``descriptors``: a BI-RADS word mix for a descriptor checkpoint (``SyntheticMix(descriptors=)``).
    """
    out_dir = Path(out_dir).resolve()
    pre = out_dir / "preprocessed"
    identity = {"source": str(source), "ratio": float(ratio), "seed": int(seed), "real_keys": sorted(real_keys),
                "plans": plans_manager.plans_name, "data_identifier": configuration_manager.data_identifier,
                **({"descriptors": descriptors} if descriptors else {})}
    record_path = out_dir / RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("identity") == identity:
            log(f"synthaug: reusing {len(record['cases'])} synthetic cases in {out_dir}")
            return [str(pre / name) for name in record["cases"]]
    shutil.rmtree(out_dir, ignore_errors=True)
    pre.mkdir(parents=True)

    real = PairDataset.from_raw(raw_dataset, cases=list(real_keys))
    log(f"synthaug: making {round(ratio * len(real))} synthetic cases from {source} (ratio {ratio}, seed {seed})")
    mix = SyntheticMix(real, open_source(source, device), ratio=ratio, seed=seed,
                       size=real.size or _median_size(real), descriptors=descriptors)
    preprocessor = configuration_manager.preprocessor_class(verbose=False)
    cases = {}
    for j in range(mix.n_synthetic):
        item = mix[mix.n_real + j]
        name = NAME.format(j)
        image_file, label_file = out_dir / "imagesTr" / f"{name}_0000.png", out_dir / "labelsTr" / f"{name}.png"
        # items hold image / 255 as float32; x / 255 * 255 rounds back to x exactly
        write_png(image_file, (item["image"][0].numpy() * 255).round().astype(np.uint8))
        write_png(label_file, item["mask"][0].numpy().astype(np.uint8))
        preprocessor.run_case_save(str(pre / name), [str(image_file)], str(label_file), plans_manager,
                                   configuration_manager, dataset_json)
        cases[name] = {"pair": item["case_id"], "label": LABEL_NAMES[item["label"]]}
    write_json(record_path, {"identity": identity, "cases": cases})  # written last: marks the folder complete
    return [str(pre / name) for name in cases]
