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
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
from torch.utils.data import Dataset

from ..errors import SynthaugError
from ..io.images import mask_box, read_gray, resize_image, resize_mask
from ..io.manifest import MANIFEST_NAME, Folder
from ..io.nnunet_raw import DATASET_JSON
from ..pipelines.base import Pair, PairGenerator, pair_seeds, sample_cases
from ..pipelines.real_background import Background, RealBackgroundGenerator
from .conditions import MAX_RATIO, ConditionSampler, restrict
from .datasets import LABEL_NAMES, PairDataset, as_size, make_item, manifest_label, read_label_png


class BankEntry(NamedTuple):
    name: str
    image_path: Path
    mask_path: Path
    label: str | None


class PairBank:
    """Pairs generated earlier and stored on disk; ``bank[k]`` reads pair k as a ``Pair``.

    Reads are lazy so a bank of thousands of pairs costs no memory and pickles
    to DataLoader workers as a list of paths.
    """

    def __init__(self, entries: list[BankEntry], root: Path | None = None):
        if not entries:
            raise SynthaugError(f"{root or 'the bank'} holds no synthetic pairs")
        missing = [str(p) for e in entries for p in (e.image_path, e.mask_path) if not Path(p).is_file()]
        if missing:
            raise SynthaugError(f"synthetic pair file(s) missing: {', '.join(missing[:3])}"
                                + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
        self.entries, self.root = entries, root

    @classmethod
    def open(cls, folder: str | Path) -> "PairBank":
        """An nnU-Net raw folder expanded by ``synthaug expand`` (its synthetic cases only)
        or a folder written by ``synthaug sample`` (images/, masks/, optional pairs.json)."""
        folder = Path(folder)
        if (folder / MANIFEST_NAME).is_file():
            return cls(_expanded_entries(folder), folder)
        if (folder / "images").is_dir():
            return cls(_sample_entries(folder), folder)
        if (folder / DATASET_JSON).is_file():
            raise SynthaugError(f"{folder} is a raw folder synthaug has not expanded (no {MANIFEST_NAME}); "
                                "run `synthaug expand` on it first")
        raise SynthaugError(f"{folder} is neither a raw folder expanded by synthaug ({MANIFEST_NAME}) "
                            "nor a `synthaug sample` output (images/ and masks/)")

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, k: int) -> Pair:
        e = self.entries[k]
        mask = read_label_png(e.mask_path).astype(np.uint8)
        return Pair(read_gray(e.image_path), mask, {"label": e.label, "case_id": e.name})


def _expanded_entries(folder: Path) -> list[BankEntry]:
    """The finished synthetic cases of an expanded raw folder (never its real ones)."""
    expanded = Folder.load(folder)
    cases = expanded.main["cases"] if expanded.main else {}
    return [BankEntry(name, *expanded.files(name), manifest_label(entry)) for name, entry in cases.items()]


def _sample_entries(folder: Path) -> list[BankEntry]:
    meta = _read_pairs_json(folder / "pairs.json")
    return [BankEntry(p.stem, p, folder / "masks" / p.name, manifest_label(meta.get(p.stem, {})))
            for p in sorted((folder / "images").glob("*.png"))]


def _read_pairs_json(path: Path) -> dict[str, dict]:
    """Per-pair meta by name; accepts {name: meta}, a list of metas with "name", or either under "pairs"."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SynthaugError(f"{path} is not valid JSON: {e}") from None
    if isinstance(data, dict) and "pairs" in data:
        data = data["pairs"]
    if isinstance(data, list):
        data = {str(d.get("name")): d for d in data if isinstance(d, dict)}
    if not isinstance(data, dict):
        raise SynthaugError(f"{path}: expected per-pair meta keyed by pair name")
    return data


def _real_cases(real) -> list[tuple]:
    """(image uint8, mask bool, label, case id) of every real item, read without augmentation when possible."""
    if isinstance(real, PairDataset):  # no need to build (and augment) every item
        return [(r.image, r.mask, r.label, r.case_id) for r in real.records]
    items = (real[i] for i in range(len(real)))
    return [(np.round(it["image"][0].numpy() * 255).astype(np.uint8), it["mask"][0].numpy() > 0,
             LABEL_NAMES[int(it["label"])], str(it.get("case_id", i))) for i, it in enumerate(items)]


def real_condition_sampler(real) -> ConditionSampler:
    """Tumour types, lesion boxes and sizes of the real items, to ask a generator for the same."""
    cases = _real_cases(real)
    boxes = []
    for _, mask, _, _ in cases:
        box = mask_box(mask)
        boxes.append(tuple(box) if box else None)
    return ConditionSampler([c[2] for c in cases], boxes, [c[1].shape for c in cases])


def real_backgrounds(real) -> list[Background]:
    """The real cases of ``real`` (a dataset, or an nnU-Net raw folder: its real cases only) as
    backgrounds for the real-background mode of the bus generator."""
    if isinstance(real, (str, Path)):
        real = PairDataset.from_raw(real)
    return [Background(case_id, image, mask.astype(bool), label) for image, mask, label, case_id in _real_cases(real)]


def with_background(generator, background: str | None, real) -> PairGenerator:
    """``generator`` itself, or (``background="real"``) its real-background mode on the cases of ``real``."""
    if background in (None, "synthetic"):
        return generator
    if background != "real":
        raise SynthaugError(f"background must be 'synthetic' or 'real', not {background!r}")
    return RealBackgroundGenerator(generator, real_backgrounds(real))


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
    """

    def __init__(self, real_dataset, source, ratio: float = 0.25, seed: int = 0, refresh_every: int | None = None,
                 cache_size: int | None = None, size=None, batch_size: int = 16, background: str | None = None):
        if isinstance(ratio, bool) or not (isinstance(ratio, (int, float, np.number)) and 0 < ratio <= MAX_RATIO):
            raise SynthaugError(f"ratio must be in (0, {MAX_RATIO}], got {ratio}")  # NaN fails every comparison
        if int(seed) < 0:
            raise SynthaugError(f"seed must be >= 0, got {seed}")
        self.real, self.n_real = real_dataset, len(real_dataset)
        self.n_synthetic = round(ratio * self.n_real)
        if self.n_synthetic == 0:
            raise SynthaugError(f"ratio {ratio} of {self.n_real} real items rounds to no synthetic item")
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.size = as_size(size) if size is not None else getattr(real_dataset, "size", None)
        self.transform = getattr(real_dataset, "transform", None)
        self.epoch, self._refresh_index = 0, None

        if isinstance(source, (str, Path)):
            source = PairBank.open(source)
        self.from_generator = isinstance(source, PairGenerator)
        if background not in (None, "synthetic") and not self.from_generator:
            raise SynthaugError("background='real' needs a generator source: a PairBank's pairs are already made")
        if self.from_generator:
            source = with_background(source, background, real_dataset)
            self.cache_size = self.n_synthetic if cache_size is None else int(cache_size)
            if self.cache_size < 1 or (refresh_every is not None and int(refresh_every) < 1):
                raise SynthaugError("cache_size and refresh_every must be >= 1")
            self.refresh_every = refresh_every
            self._generator, self._pairs = source, []
            self._sampler = real_condition_sampler(real_dataset)
        elif isinstance(source, PairBank):
            if refresh_every is not None or cache_size is not None:
                raise SynthaugError("refresh_every and cache_size apply to a generator source, not a PairBank")
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
        rounds = -(-self.n_synthetic // n)  # enough shuffled passes over the source to fill every slot
        self._order = np.concatenate([rng.permutation(n) for _ in range(rounds)])[: self.n_synthetic]

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
        pairs = sample_cases(self._generator, self.seed, indices, condition_of)
        cache = []
        for pair, s, k in zip(pairs, seeds, indices):
            c, real_size = condition_of(k), drawn(k)[1]
            # resized once here, not at every access; a real background keeps its own size
            size = self.size or (pair.image.shape if "background" in pair.meta else real_size)
            meta = {"label": c.label or pair.meta.get("label"), "case_id": f"synth_seed{s}",
                    **({"background": pair.meta["background"]} if "background" in pair.meta else {})}
            cache.append(Pair(resize_image(pair.image, size), resize_mask(pair.mask, size), meta))
        return cache

    def __len__(self) -> int:
        return self.n_real + self.n_synthetic

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if index < self.n_real:
            return self.real[index]
        pair = self._pairs[int(self._order[index - self.n_real])]
        item = make_item(pair.image, pair.mask, pair.meta.get("label"), pair.meta["case_id"], True, self.size)
        return self.transform(item) if self.transform else item

    def __getstate__(self) -> dict:
        """Workers get the cache and the epoch order, never the generator's weights."""
        state = self.__dict__.copy()
        state["_generator"] = None
        return state
