"""nnU-Net v2 trainers that mix synthaug's synthetic pairs into training on the fly.

Use with ``nnUNet_extTrainer=<repo>/integrations/nnunet`` (nnU-Net then finds
the class by name) and::

    SYNTHAUG_RATIO=0.25 SYNTHAUG_SOURCE=samples/ nnUNetv2_train 501 2d 0 -tr nnUNetTrainerSynthAug

Settings (environment variables, read when training starts):

* ``SYNTHAUG_RATIO`` -- synthetic cases per real training case of the fold
  (default 0.25; 0 trains on real cases only). Same meaning as
  ``synthaug expand --ratio`` and ``SyntheticMix``: a uniform draw picks a
  synthetic case with probability ratio / (1 + ratio).
* ``SYNTHAUG_SOURCE`` -- a folder of pairs (``synthaug sample`` output, or a
  raw folder ``synthaug expand`` filled), or a generator: a registered name
  or a checkpoint folder (default ``bus``, the shipped checkpoint).
* ``SYNTHAUG_SEED`` -- which synthetic pairs are drawn (default 0).
* ``SYNTHAUG_SCHEDULE`` -- ``constant`` (default), ``decay`` (the synthetic share of the draws
  falls linearly to none by the last epoch, in ``DECAY_PHASES`` steps) or ``pretrain`` (only
  synthetic cases for the first half of the epochs, then only real ones): the same rule as
  ``SyntheticMix(schedule=...)``, applied through the loader's sampling probabilities.
* ``SYNTHAUG_DESCRIPTOR`` -- a BI-RADS word mix for a bus checkpoint trained on descriptor
  prompts, e.g. ``echo=isoechoic:0.5,hypoechoic:0.5;margin=indistinct`` (default: the
  training shares); the same as ``synthaug expand --descriptor``.

nnU-Net names the results folder after the trainer class only, so runs with
different settings need different ``nnUNet_results`` folders (or a subclass
per setting).

It refuses a raw folder ``synthaug expand`` has filled (``synthaug_manifest.json``):
those synthetic cases would pass for real ones. Use plain ``nnUNetv2_train``
there, or revert and preprocess again.

This module is imported by nnU-Net as a top-level module (it puts this folder
on ``sys.path`` for the lookup): absolute imports only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import distributed as dist

from nnunetv2.paths import nnUNet_raw
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from integrations.nnunet.synthetic_cases import refuse_expanded_raw, write_synthetic_cases
from synthaug.expand import MAX_RATIO  # the bound synthaug expand accepts
from synthaug.errors import SynthaugError
from synthaug.mix import SCHEDULES, scheduled_share
from synthaug.models.descriptors import parse_mix
from synthaug.paths import DEFAULT_GENERATOR

KEYS_FILE = "loader_keys.json"
DECAY_PHASES = 10  # a multi-process loader restarts its workers when the probabilities change


def synthaug_schedule() -> str:
    """SYNTHAUG_SCHEDULE (constant, decay or pretrain)."""
    schedule = os.environ.get("SYNTHAUG_SCHEDULE", "constant").strip() or "constant"
    if schedule not in SCHEDULES:
        raise ValueError(f"SYNTHAUG_SCHEDULE={schedule!r}: use one of {', '.join(SCHEDULES)}")
    return schedule


def schedule_probabilities(n_real: int, n_synthetic: int, share: float) -> np.ndarray:
    """Per-key sampling probabilities (real keys first) that draw synthetic keys with probability ``share``."""
    if n_synthetic == 0 or share <= 0:
        return np.concatenate([np.full(n_real, 1 / n_real), np.zeros(n_synthetic)])
    if share >= 1:
        return np.concatenate([np.zeros(n_real), np.full(n_synthetic, 1 / n_synthetic)])
    return np.concatenate([np.full(n_real, (1 - share) / n_real), np.full(n_synthetic, share / n_synthetic)])


def synthaug_descriptors() -> dict | None:
    """SYNTHAUG_DESCRIPTOR as a parsed word mix (``synthaug.models.descriptors.parse_mix``), or None."""
    raw = os.environ.get("SYNTHAUG_DESCRIPTOR", "").strip()
    try:
        return parse_mix(raw)
    except SynthaugError as e:
        raise ValueError(f"SYNTHAUG_DESCRIPTOR={raw!r}: {e}") from None


def synthaug_settings() -> tuple[float, str, int]:
    """(ratio, source, seed) from SYNTHAUG_RATIO, SYNTHAUG_SOURCE and SYNTHAUG_SEED."""
    raw = os.environ.get("SYNTHAUG_RATIO", "0.25")
    try:
        ratio = float(raw)
    except ValueError:
        ratio = float("nan")
    if not 0 <= ratio <= MAX_RATIO:  # NaN fails too
        raise ValueError(f"SYNTHAUG_RATIO={raw!r}: need a number in [0, {MAX_RATIO}]")
    seed = int(os.environ.get("SYNTHAUG_SEED", "0"))
    return ratio, os.environ.get("SYNTHAUG_SOURCE", DEFAULT_GENERATOR), seed


class nnUNetTrainerSynthAug(nnUNetTrainer):
    """nnU-Net's trainer with synthetic cases added to the training data loader only.

    The one hook is ``get_tr_and_val_datasets``, the method that turns the
    fold's split into the two datasets behind the train and validation data
    loaders. The override keeps nnU-Net's validation dataset, and the keys
    ``do_split`` returns, untouched, so neither the per-epoch validation nor
    the final validation (``perform_actual_validation`` calls ``do_split``
    itself) can see a synthetic case, and splits_final.json stays as nnU-Net
    or ``synthaug splits`` made it. Training gets ``round(ratio x real)``
    synthetic cases preprocessed by nnU-Net's own preprocessor into
    ``<fold>/synthaug_train/`` when training starts (see
    ``synthetic_cases.write_synthetic_cases``), as extra keys of the same
    nnU-Net dataset class; nnU-Net's loader draws keys uniformly, which gives
    the ratio, and applies its usual augmentation to both kinds.

    Rejected alternatives: wrapping the data loader would have to re-implement
    nnU-Net's patch sampling, foreground oversampling and augmentation for the
    synthetic half; writing the cases into the shared preprocessed folder
    would let nnU-Net's default splits (and ``fold all``) validate on them.

    ``<fold>/synthaug_train/loader_keys.json`` records the keys both loaders
    were given, for audit.
    """

    def get_tr_and_val_datasets(self):
        # whatever the ratio: on an expanded folder this trainer cannot tell real cases from synthetic ones
        refuse_expanded_raw(Path(nnUNet_raw or ".") / self.plans_manager.dataset_name)
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        ratio, source, seed = synthaug_settings()
        if ratio == 0:
            self.print_to_log_file("synthaug: SYNTHAUG_RATIO=0, training on real cases only")
            return dataset_tr, dataset_val
        real_keys = list(dataset_tr.identifiers)
        out = Path(self.output_folder) / "synthaug_train"
        if self.is_ddp and self.local_rank != 0:
            dist.barrier()  # rank 0 writes the cases; the others then reuse them
        synthetic = write_synthetic_cases(
            out, Path(nnUNet_raw) / self.plans_manager.dataset_name, real_keys, source, ratio, seed,
            self.plans_manager, self.configuration_manager, self.dataset_json, device=self.device.type,
            log=self.print_to_log_file, descriptors=synthaug_descriptors())
        if self.is_ddp and self.local_rank == 0:
            dist.barrier()
        written_as = infer_dataset_class(str(out / "preprocessed"))
        if written_as is not self.dataset_class:
            raise RuntimeError(f"synthetic cases were preprocessed as {written_as.__name__} but the real ones are "
                               f"{self.dataset_class.__name__}; rerun nnUNetv2_preprocess with this nnU-Net version")
        dataset_tr = self.dataset_class(self.preprocessed_dataset_folder, real_keys + synthetic,
                                        folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage)
        (out / KEYS_FILE).write_text(json.dumps(
            {"train": list(dataset_tr.identifiers), "val": list(dataset_val.identifiers)}, indent=1) + "\n")
        self.print_to_log_file(f"synthaug: training loader draws from {len(real_keys)} real + {len(synthetic)} "
                               f"synthetic cases; validation keeps its {len(dataset_val.identifiers)} real cases")
        self._synthaug_counts = (len(real_keys), len(synthetic))
        return dataset_tr, dataset_val

    def on_train_epoch_start(self):
        super().on_train_epoch_start()
        self._apply_schedule()

    def _apply_schedule(self) -> None:
        """Set this epoch's sampling probabilities when SYNTHAUG_SCHEDULE moves the synthetic share."""
        schedule, counts = synthaug_schedule(), getattr(self, "_synthaug_counts", None)
        if schedule == "constant" or counts is None:
            return
        n_real, n_syn = counts
        epoch = self.current_epoch
        if schedule == "decay":  # piecewise constant, so worker restarts stay few
            epoch = (epoch * DECAY_PHASES // self.num_epochs) * self.num_epochs // DECAY_PHASES
        share = round(scheduled_share(schedule, epoch, self.num_epochs, n_syn / (n_real + n_syn)), 4)
        if share == getattr(self, "_synthaug_share", None):
            return
        self._synthaug_share = share
        augmenter = self.dataloader_train
        loader = getattr(augmenter, "data_loader", None) or augmenter.generator
        loader.sampling_probabilities = schedule_probabilities(n_real, n_syn, share)
        if hasattr(augmenter, "restart"):  # worker processes hold copies of the loader
            augmenter.restart()
        self.print_to_log_file(f"synthaug: schedule {schedule}, epoch {self.current_epoch}: synthetic share {share:.2f}")


def _shorten(trainer: nnUNetTrainer) -> None:
    """SYNTHAUG_NNUNET_EPOCHS epochs of SYNTHAUG_NNUNET_ITERS train and validation iterations (defaults 1, 2)."""
    trainer.num_epochs = int(os.environ.get("SYNTHAUG_NNUNET_EPOCHS", "1"))
    trainer.num_iterations_per_epoch = int(os.environ.get("SYNTHAUG_NNUNET_ITERS", "2"))
    trainer.num_val_iterations_per_epoch = trainer.num_iterations_per_epoch


# nnU-Net records __init__'s arguments by the subclass signature: it must stay spelled out.
class nnUNetTrainerSynthAugTiny(nnUNetTrainerSynthAug):
    """``nnUNetTrainerSynthAug`` for smoke tests: a few iterations instead of 1000 x 250."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _shorten(self)


class nnUNetTrainerTiny(nnUNetTrainer):
    """Plain nnU-Net, a few iterations: smoke-tests the expand route (synthetic cases already in the raw folder)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        _shorten(self)
