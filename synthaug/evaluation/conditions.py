"""Training conditions, parsed from the names a user writes.

=====================  =================================================================================
``real``               the real train part, no augmentation (``0%`` is the earlier protocol's name for it)
``ordinary``           real + ordinary augmentation (flip, rotation, affine, brightness)
``copy-paste N%``      real + round(N% x real) copy-paste pairs (a real lesion pasted into another real
                       image, see ``copypaste.py``), no ordinary augmentation
``<gen> N%``           real + round(N% x real) synthetic pairs of the generator ``<gen>`` (e.g. ``bus``),
                       no ordinary augmentation: the synthetic pairs' own effect
``<gen>-real N%``      the same with the generator's real-background mode: a new lesion repainted into a
                       real train-part image (backgrounds from the train part only)
``<gen> N% bank M%``   N% synthetic items an epoch, drawn afresh each epoch from a bank of M% x real pairs
``<gen> N% decay``     the synthetic share decays linearly to none by the last epoch (same items an epoch)
``<gen> N% pretrain``  synthetic pairs only for the first half of the epochs, then real items only
``... + ordinary``     any of the above with ordinary augmentation on every item, real and added
``N%``                 earlier protocol (``quick``/``cpu`` profiles): ``<gen> N% + ordinary``, as in the BUS paper
=====================  =================================================================================
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import SynthaugError

REAL, COPY_PASTE, SYNTHETIC = "real", "copy-paste", "synthetic"
LEGACY_CONDITIONS = ("0%", "ordinary", "25%", "50%", "100%", "200%")  # the quick/cpu profiles' conditions
_ADDED = re.compile(r"(?P<word>[a-z][a-z0-9_-]*)\s+(?P<pct>\d+(?:\.\d+)?)%(?:\s+bank\s+(?P<bank>\d+(?:\.\d+)?)%)?"
                    r"(?:\s+(?P<schedule>decay|pretrain))?(?P<aug>\s*\+\s*ordinary)?")


@dataclass(frozen=True)
class TrainCondition:
    name: str
    ratio: float  # added items (synthetic or copy-paste) per real item
    augment: bool  # ordinary augmentation on every item
    source: str = REAL  # what the added items are: REAL (none), COPY_PASTE or SYNTHETIC
    generator: str | None = None  # the word before the ratio of a synthetic condition, e.g. "bus"
    background: str = "synthetic"  # "real": pairs repainted into real train-part images ("bus-real N%")
    bank: float | None = None  # pairs available, per real item ("bank M%"); None: as many as the ratio
    schedule: str = "constant"  # SyntheticMix's schedule: constant, decay or pretrain

    @property
    def pool_ratio(self) -> float:
        """Distinct added pairs per real item the condition draws from."""
        return self.bank if self.bank is not None else self.ratio

    @property
    def classical(self) -> bool:
        """A baseline a user would try without a generator (ordinary augmentation or copy-paste)."""
        return self.source == COPY_PASTE or (self.source == REAL and self.augment)

    @property
    def synthetic(self) -> bool:
        return self.source == SYNTHETIC and self.ratio > 0

    def describe(self) -> str:
        if self.source == REAL:
            return "real train part, " + ("ordinary augmentation" if self.augment else "no augmentation")
        what = ("copy-paste pairs (a real lesion pasted into another real train image, feathered blend)"
                if self.source == COPY_PASTE else f"synthetic pairs of the generator ({self.generator or 'given'})"
                + (", real train-part backgrounds with a repainted lesion" if self.background == "real" else ""))
        aug = ("**with ordinary augmentation too (as in the BUS paper)**, the added pairs augmented like the real ones"
               if self.augment and self.generator is None and self.source == SYNTHETIC
               else "ordinary augmentation on every item" if self.augment else "no ordinary augmentation")
        how = ""
        if self.bank is not None:
            how += f", drawn each epoch from a bank of {100 * self.bank:g}% x real pairs"
        if self.schedule == "decay":
            how += ", synthetic share decaying linearly to none by the last epoch"
        elif self.schedule == "pretrain":
            how += ", synthetic pairs only for the first half of the epochs, then real only"
        return f"real + round({100 * self.ratio:g}% x real) {what}{how}; {aug}"

    @classmethod
    def parse(cls, name: str) -> "TrainCondition":
        text = " ".join(name.strip().split())
        if text in ("real", "0%"):
            return cls(text, 0.0, False)
        if text == "ordinary":
            return cls(text, 0.0, True)
        m = re.fullmatch(r"(\d+(?:\.\d+)?)%", text)
        if m:  # earlier protocol: synthetic with ordinary augmentation
            return cls(text, float(m.group(1)) / 100, True, SYNTHETIC)
        m = _ADDED.fullmatch(text)
        if not m or float(m.group("pct")) <= 0:
            raise SynthaugError(f"unknown condition {name!r}: use real, ordinary, 'copy-paste N%', '<generator> N%' or "
                             "'<generator> N% + ordinary' (N > 0), e.g. 'bus 25% + ordinary'")
        word, ratio, aug = m.group("word"), float(m.group("pct")) / 100, bool(m.group("aug"))
        bank, schedule = m.group("bank"), m.group("schedule") or "constant"
        canonical = (f"{word} {m.group('pct')}%" + (f" bank {bank}%" if bank else "")
                     + (f" {schedule}" if m.group("schedule") else "") + (" + ordinary" if aug else ""))
        extra = {"bank": float(bank) / 100 if bank else None, "schedule": schedule}
        if word == COPY_PASTE:
            if bank or m.group("schedule"):
                raise SynthaugError(f"condition {name!r}: banks and schedules apply to synthetic pairs, not copy-paste")
            return cls(canonical, ratio, aug, COPY_PASTE)
        if bank and float(bank) / 100 < ratio:
            raise SynthaugError(f"condition {name!r}: the bank ({bank}%) must hold at least the ratio's pairs")
        if word.endswith("-real"):
            return cls(canonical, ratio, aug, SYNTHETIC, word[: -len("-real")], "real", **extra)
        return cls(canonical, ratio, aug, SYNTHETIC, word, **extra)

    def file_stem(self) -> str:
        """The condition in a run file name: ``0%`` -> ``0pct`` (as before), spaces and ``+`` spelled out."""
        return self.name.replace("%", "pct").replace(" + ", "+").replace("+", "_plus_").replace(" ", "_")


def parse_conditions(names) -> list[TrainCondition]:
    """Parse a list of names (or one comma-separated string), refusing duplicates."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    out = [TrainCondition.parse(n) for n in names]
    seen = [c.name for c in out]
    if len(set(seen)) != len(seen):
        raise SynthaugError(f"duplicate condition in {seen}")
    return out
