"""Mix synthetic pairs into a real training set at a fixed ratio (smp/timm loops).

``SyntheticMix`` appends ``round(ratio * len(real))`` synthetic items after the
real ones, so a plain shuffling DataLoader sees the ratio on average without
a custom sampler. Synthetic pairs come from a ``PairBank`` (pairs generated
earlier, read lazily from disk) or from a generator, sampled in the main
process into a bounded cache that ``set_epoch`` refreshes every
``refresh_every`` epochs. Generation never happens in a DataLoader worker: a
worker would redo it for every worker and could not share the model.

Which synthetic pair an index shows is a pure function of (seed, epoch,
index), fixed in the dataset state before the epoch's workers start, so a
run is reproducible per seed whatever num_workers is. Call ``set_epoch``
before iterating each epoch; with ``persistent_workers=True`` the workers
keep the state of the epoch they were started in.

It sits above ``synthaug.data`` (banks, datasets) and ``synthaug.gate`` (the
quality gate, which trains its judge with the training loop), so it is a
module of its own rather than part of the data package.
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .data.conditions import MAX_RATIO, restrict
from .data.datasets import as_size, make_item
from .data.mix import PairBank, real_condition_sampler, with_background
from .errors import SynthaugError
from .gate import DEFAULT_TRIES, with_gate
from .io.images import resize_image, resize_mask
from .pipelines.base import Pair, PairGenerator, pair_seeds, sample_cases

FEW_PAIRS_FACTOR = 2  # warn when a bank's pairs must fill more than this many slots each


SCHEDULES = ("constant", "decay", "pretrain")


def scheduled_share(schedule: str, epoch: int, epochs: int | None, constant: float,
                    pretrain_fraction: float = 0.5) -> float:
    """Share of an epoch's items that are synthetic: ``constant`` throughout, decaying linearly from it
    to none at the last epoch, or all synthetic for the first ``pretrain_fraction`` of the epochs then
    none. One rule for ``SyntheticMix`` and nnU-Net's ``SYNTHAUG_SCHEDULE``."""
    if schedule == "decay":
        return constant * max(0.0, 1 - epoch / max(1, epochs - 1))
    if schedule == "pretrain":
        return 1.0 if epoch < round(pretrain_fraction * epochs) else 0.0
    if schedule != "constant":
        raise SynthaugError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
    return constant


class SyntheticMix(Dataset):
    """``real_dataset`` followed by ``round(ratio * len(real_dataset))`` synthetic items.

    ``source`` is a ``PairBank`` (or a folder to open as one) or a
    ``PairGenerator``. For a generator, ``cache_size`` pairs (default: as many
    as synthetic items) are sampled with seeds derived from ``seed`` and the
    refresh index ``epoch // refresh_every``; each seed's conditions (tumour
    type with the real class shares, a real lesion box, a real image size) are
    drawn as ``synthaug expand`` draws them, so refresh 0 with seed S holds
    the pairs an expansion with seed S would add. Synthetic items are resized
    to ``size`` (default: the real dataset's fixed size, else the drawn real
    size) and go through the real dataset's ``transform``, so both kinds see
    the same augmentation. ``ratio`` is capped at expand's MAX_RATIO (10). ``batch_size`` is
    accepted for compatibility only: generation runs the fixed blocks of ``sample_cases``, so the
    pixels never depend on it. ``background="real"`` (generator sources only) keeps the tissue of
    a real case of ``real_dataset`` and repaints only a new lesion into it (the bus generator's
    real-background mode); the backgrounds come from the dataset mixed into, never from elsewhere.
    ``gate_dice=T`` (generator sources only) keeps only pairs a judge segmenter trained on
    ``real_dataset``'s cases scores at Dice >= T, redrawing the others (``synthaug.gate``; ``judge``
    a trained judge folder instead); ``gate_report`` then holds the rejection rate.
    """

    def __init__(self, real_dataset, source, ratio: float = 0.25, seed: int = 0, refresh_every: int | None = None,
                 cache_size: int | None = None, size=None, batch_size: int = 16, background: str | None = None,
                 gate_dice: float | None = None, judge=None, gate_tries: int = DEFAULT_TRIES,
                 schedule: str = "constant", epochs: int | None = None, pretrain_fraction: float = 0.5,
                 descriptors=None):
        if isinstance(ratio, bool) or not (isinstance(ratio, (int, float, np.number)) and 0 < ratio <= MAX_RATIO):
            raise SynthaugError(f"ratio must be in (0, {MAX_RATIO}], got {ratio}")  # NaN fails every comparison
        if int(seed) < 0:
            raise SynthaugError(f"seed must be >= 0, got {seed}")
        self.real, self.n_real = real_dataset, len(real_dataset)
        self.n_synthetic = round(ratio * self.n_real)
        if self.n_synthetic == 0:
            raise SynthaugError(f"ratio {ratio} of {self.n_real} real items rounds to no synthetic item")
        if schedule not in SCHEDULES:
            raise SynthaugError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}")
        if schedule != "constant" and (epochs is None or int(epochs) < 1):
            raise SynthaugError(f"schedule {schedule!r} needs epochs (the run's epoch count, >= 1)")
        if not 0 < pretrain_fraction < 1:
            raise SynthaugError(f"pretrain_fraction must be in (0, 1), got {pretrain_fraction}")
        self.schedule, self.epochs, self.pretrain_fraction = schedule, epochs, float(pretrain_fraction)
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.size = as_size(size) if size is not None else getattr(real_dataset, "size", None)
        self.transform = getattr(real_dataset, "transform", None)
        self.epoch, self._refresh_index = 0, None

        if isinstance(source, (str, Path)):
            source = PairBank.open(source)
        self.from_generator = isinstance(source, PairGenerator)
        if background not in (None, "synthetic") and not self.from_generator:
            raise SynthaugError("background='real' needs a generator source: a PairBank's pairs are already made")
        if gate_dice is not None and not self.from_generator:
            raise SynthaugError("gate_dice needs a generator source: gate a bank when making it "
                                "(`synthaug sample --gate-dice`)")
        if descriptors is not None:
            if not hasattr(source, "with_descriptors"):
                raise SynthaugError("descriptors need a generator trained on descriptor prompts (bus), not "
                                    f"{type(source).__name__}")
            source = source.with_descriptors(descriptors)
        if self.from_generator:
            source = with_gate(with_background(source, background, real_dataset), gate_dice, real=real_dataset,
                               judge=judge, tries=gate_tries)
            self.cache_size = self.n_synthetic if cache_size is None else int(cache_size)
            if self.cache_size < 1 or (refresh_every is not None and int(refresh_every) < 1):
                raise SynthaugError("cache_size and refresh_every must be >= 1")
            self.refresh_every = refresh_every
            self._generator, self._pairs = source, []
            self._sampler = real_condition_sampler(real_dataset)
        elif isinstance(source, PairBank):
            if refresh_every is not None or cache_size is not None:
                raise SynthaugError("refresh_every and cache_size apply to a generator source, not a PairBank")
            if len(source) == 0:
                raise SynthaugError(f"the bank {getattr(source, 'root', '')} holds no pairs")
            if self.n_synthetic > FEW_PAIRS_FACTOR * len(source):
                warnings.warn(f"the bank holds {len(source)} pairs for {self.n_synthetic} synthetic slots: each pair "
                              f"repeats about {self.n_synthetic / len(source):.0f} times an epoch. Make more pairs "
                              "(`synthaug sample -n N`) or lower the ratio", UserWarning, stacklevel=2)
            self.cache_size, self.refresh_every = None, None
            self._generator, self._pairs = None, source
        else:
            raise SynthaugError(f"source must be a PairBank, a bank folder or a PairGenerator, not {type(source).__name__}")
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Fix which synthetic pair each index shows this epoch (and refresh a generator cache)."""
        self.epoch = int(epoch)
        if self.from_generator:
            r = self.epoch // self.refresh_every if self.refresh_every else 0
            if r != self._refresh_index:
                self._pairs, self._refresh_index = self._generate(r), r
        n = len(self._pairs)
        rng = np.random.default_rng([self.seed, self.epoch])
        slots = max(self.n_synthetic, round(self.synthetic_share() * len(self)))  # pretraining fills every index
        rounds = -(-slots // n)  # enough shuffled passes over the source to fill every slot
        self._order = np.concatenate([rng.permutation(n) for _ in range(rounds)])[:slots]
        self._slots = self._schedule_slots()

    def synthetic_share(self, epoch: int | None = None) -> float:
        """The share of this epoch's items that are synthetic pairs under the schedule."""
        e = self.epoch if epoch is None else int(epoch)
        return scheduled_share(self.schedule, e, self.epochs, self.n_synthetic / len(self), self.pretrain_fraction)

    def _schedule_slots(self) -> np.ndarray | None:
        """What each index shows this epoch: >= 0 a real item, < 0 synthetic slot ``-1 - k``
        (None: the constant layout, real items then synthetic slots). Real draws beyond the real
        items are shuffled per (seed, epoch) so they spread over the real set."""
        if self.schedule == "constant":
            return None
        total, n_syn = len(self), round(self.synthetic_share() * len(self))
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        n_real = total - n_syn
        passes = [rng.permutation(self.n_real) for _ in range(-(-n_real // self.n_real))]
        real = np.concatenate(passes)[:n_real] if passes else np.zeros(0, np.int64)
        syn = -1 - np.arange(n_syn)
        return np.concatenate([real, syn]).astype(np.int64)

    def _generate(self, refresh: int) -> list[Pair]:
        if self._generator is None:
            raise SynthaugError("a SyntheticMix copy in a DataLoader worker cannot generate; "
                                "call set_epoch in the main process before iterating")
        indices = range(refresh * self.cache_size, (refresh + 1) * self.cache_size)
        seeds = pair_seeds(self.seed, self.cache_size, start=indices[0])

        @functools.lru_cache(maxsize=None)
        def drawn(k: int):  # what `synthaug expand` would ask for case k: (condition, size), drawn once
            return self._sampler.draw(pair_seeds(self.seed, 1, start=k)[0])

        def condition_of(k: int):
            return restrict(drawn(k)[0], self._generator.conditions)

        # the same fixed network blocks as expand: byte-identical to the cases an expansion adds
        pairs = sample_cases(self._generator, self.seed, indices, condition_of, progress=True)  # a bar: it takes a while
        cache = []
        for pair, s, k in zip(pairs, seeds, indices):
            c, real_size = condition_of(k), drawn(k)[1]
            # resized once here, not at every access; a real background keeps its own size
            size = self.size or (pair.image.shape if "background" in pair.meta else real_size)
            meta = {"label": c.label or pair.meta.get("label"), "case_id": f"synth_seed{s}",
                    **{key: pair.meta[key] for key in ("background", "gate") if key in pair.meta}}
            cache.append(Pair(resize_image(pair.image, size), resize_mask(pair.mask, size), meta))
        return cache

    @property
    def gate_report(self) -> dict | None:
        """Threshold, judge hash, draws, accepted pairs and rejection rate of the gate (None without one)."""
        gen = self._generator
        if gen is None or not hasattr(gen, "rejection_rate"):
            return None
        return {**gen.describe(), "draws": gen.draws, "accepted": gen.accepted,
                "rejection_rate": round(gen.rejection_rate, 4)}

    def __len__(self) -> int:
        return self.n_real + self.n_synthetic

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        slot = index - self.n_real if self._slots is None else -1 - int(self._slots[index])
        if slot < 0:
            return self.real[index if self._slots is None else int(self._slots[index])]
        pair = self._pairs[int(self._order[slot])]
        item = make_item(pair.image, pair.mask, pair.meta.get("label"), pair.meta["case_id"], True, self.size)
        return self.transform(item) if self.transform else item

    def __getstate__(self) -> dict:
        """Workers get the cache and the epoch order, never the generator's weights."""
        state = self.__dict__.copy()
        state["_generator"] = None
        return state
