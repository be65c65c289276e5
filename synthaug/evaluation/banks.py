"""The generator's record (what it says it was trained on) and the synthetic bank.

Synthetic pairs are generated once per generator and sampler setting into
``--work/banks/<generator>-<checkpoint hash>-<scheduler>-<steps>/``, enough for the
largest ratio, at the real class shares, in chunks renamed into place when
finished (generation resumes after a kill). Each ratio and seed trains on a fixed
subset of the bank of that ratio's size, nested across ratios.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..data.mix import PairBank
from ..errors import SynthaugError
from ..gate import DEFAULT_TRIES, judge_key
from ..pipelines.base import CARD_NAME, checkpoint_hash, read_generator_info
from ..pipelines.registry import create_generator, resolve_checkpoint
from ..precision import native_bf16
from ..sampling import sample_to_folder
from .splits import class_counts

LABEL_ORDER = ("benign", "malignant", None)  # None: a generator that takes no tumour type


def training_case_ids(info: dict) -> set[str]:
    """Case ids a checkpoint records it trained on (``synthaug.json`` "training_data"); empty when it records none."""
    return set((info.get("training_data") or {}).get("case_ids") or [])


def generator_record(ref: str, held_out: set[str] | None = None, external: set[str] | None = None) -> dict:
    """What the checkpoint says about itself, to put beside the numbers.

    A comparison is only fair for a generator that never saw the cases it is
    tested on. `synthaug train` / `fit` record the case ids they trained on in
    synthaug.json (assembled checkpoints keep their parts' shared list), so
    with ``held_out`` (the case ids a trial tests on) the record says how many
    of them the generator trained on ("held_out_seen"; None when it records no
    ids, so it cannot tell); with ``external`` (an external test's case ids) the same
    count for it ("external_seen"). Case ids are compared as written: a folder whose
    ids were renamed cannot be checked. The model card's "- data:" line is kept.
    """
    cls, path = resolve_checkpoint(ref)
    info = read_generator_info(path)
    card = (path / CARD_NAME).read_text(encoding="utf-8") if (path / CARD_NAME).is_file() else ""
    data_line = next((line[len("- data:"):].strip() for line in card.splitlines() if line.startswith("- data:")), None)
    trained_on = training_case_ids(info)
    out = {
        "ref": str(ref), "path": str(path), "generator": info["generator"], "checkpoint_hash": checkpoint_hash(path),
        "conditions": sorted(cls.checkpoint_conditions(path)), "info": info, "card_data": data_line,
        "training_cases": len(trained_on) or None,
    }
    if held_out is not None:
        out["training_source"] = (info.get("training_data") or {}).get("source")
        out["held_out_seen"] = len(trained_on & set(held_out)) if trained_on else None
    if external is not None:
        out["external_seen"] = len(trained_on & set(external)) if trained_on else None
    return out


def sampler_setting(record: dict, steps: int | None, scheduler: str | None) -> tuple[int | None, str | None, str]:
    """The (steps, scheduler) a bank is sampled with (the checkpoint's defaults unless given) and the
    bank's folder name, which changes with any of them, so banks never mix settings."""
    steps = steps or record["info"].get("default_steps")
    scheduler = scheduler or record["info"].get("default_scheduler")
    key = f"{record['generator']}-{record['checkpoint_hash']}-{scheduler or 'default'}-{steps or 'default'}"
    return steps, scheduler, key


def chunk_seed(label: str | None, k: int) -> int:
    """Base seed of chunk ``k`` of one class; ``pair_seeds`` keeps pairs of distinct bases apart."""
    return 100_000 * LABEL_ORDER.index(label) + k


@dataclass
class Bank:
    """Entries of a generated bank by tumour type (None: unlabelled), plus how it was made."""

    key: str
    entries: dict
    seconds_generating: float = 0.0
    record: dict = field(default_factory=dict)
    base: dict | None = None  # pairs per class the conditions without a "bank M%" draw from (their largest ratio)
    n_real: int = 0  # real train cases the bank's ratios are counted against (the full train part)

    def pool(self, counts: dict) -> dict:
        """Entries per class a condition needing ``counts`` draws from: the bank's first ``base`` pairs, or
        more for a larger bank. Conditions without a bank therefore see the same pairs whether or not a
        run with a large bank made the bank grow (chunk k always holds the same seeds)."""
        base = self.base or {label: len(v) for label, v in self.entries.items()}
        return {label: v[: max(base.get(label, 0), counts.get(label, 0))] for label, v in self.entries.items()}


def variant_key(options: dict | None, gate: dict | None) -> str:
    """The bank key's suffix for sampler options (e.g. PIG's ``mask_guidance``) and a quality gate
    (threshold and the judge's cache name, a hash of the real cases it learns from), so banks made
    with other options or gates never mix. Empty for the plain generator."""
    out = "".join(f"-{k}{v:g}" if isinstance(v, float) else f"-{k}{v}" for k, v in sorted((options or {}).items()))
    if gate:
        out += f"-gate{gate['dice']:g}-{judge_key(gate['real'])}"
    return out


def ensure_bank(record: dict, work: Path, need: dict, steps, scheduler, chunk: int, batch_size: int,
                generate: bool = True, backgrounds=None, options: dict | None = None,
                gate: dict | None = None, bf16: bool | None = None) -> Bank:
    """Generate whatever chunks of the bank are missing, then return ``need[label]`` entries per class
    (with ``generate=False``, only what is already there: for a report while a run goes on).

    A chunk is ``chunk`` pairs of one class in its own folder, renamed into
    place only when ``sample_to_folder`` has finished it, so a killed run
    leaves no half chunk behind and the next one resumes at the first
    missing chunk (a chunk's lock makes a second process wait for it instead of making it twice).
    Chunk k of a class always holds the same seeds, so a
    larger need later only adds chunks. ``backgrounds`` (a dataset, the benchmark's train part)
    makes a real-background bank: every pair is a lesion repainted into one of its images, never
    into a validation or test image; the bank key names those cases. ``options`` are the generator's
    sampler keywords (e.g. ``{"mask_guidance": 4.0}``); ``gate`` (``{"dice": T, "real": train part,
    "tries": N}``) keeps only pairs the judge of the train part scores at Dice >= T (``synthaug.gate``).
    ``bf16`` names the precision of a bank made elsewhere (``generate=False`` only; default: this machine's).
    """
    if bf16 is not None and generate and bf16 != native_bf16():
        raise SynthaugError(f"a bank in bf16={bf16} cannot be made here: this CPU would make it in the other precision")
    steps, scheduler, key = sampler_setting(record, steps, scheduler)
    if not (native_bf16() if bf16 is None else bf16):  # made in float32 (no native bf16 there): other pixels
        key += "-fp32"
    key += variant_key(options, gate)
    if backgrounds is not None:
        ids = sorted(r.case_id for r in backgrounds.records)
        key += "-realbg-" + hashlib.sha1("\n".join(ids).encode()).hexdigest()[:8]
    root = work / "banks" / key
    gen, seconds, entries, made_chunks = None, 0.0, {}, []
    for label, n in need.items():
        folder = root / (label or "unlabelled")
        chunks = []
        for k in range(-(-n // chunk)):
            done = folder / f"chunk{chunk:03d}_{k:04d}"
            if not (done / "pairs.json").is_file():
                if not generate:
                    break
                if gen is None:
                    kwargs = {k_: v for k_, v in {"steps": steps, "scheduler": scheduler}.items() if v is not None}
                    # torch engine: banks are keyed by checkpoint hash and settings, and were made with torch;
                    # the OpenVINO engine rounds differently, so a resumed bank would mix the two
                    gen = create_generator(record["path"], engine="torch", **kwargs, **(options or {}))
                folder.mkdir(parents=True, exist_ok=True)
                with FileLock(str(done) + ".lock"):  # a second benchmark process waits, then finds it done
                    if not (done / "pairs.json").is_file():
                        partial = done.with_name(done.name + ".partial")
                        shutil.rmtree(partial, ignore_errors=True)
                        t0 = time.time()
                        sample_to_folder(gen, chunk, partial, seed=chunk_seed(label, k), tumour_type=label or "mixed",
                                         batch_size=batch_size, background_from=backgrounds,
                                         **({"gate_dice": gate["dice"], "gate_data": gate["real"],
                                             "gate_tries": gate.get("tries", DEFAULT_TRIES)} if gate else {}))
                        seconds += time.time() - t0
                        partial.rename(done)
            chunks.append(done)
        made_chunks += chunks
        entries[label] = [e for c in chunks for e in PairBank.open(c).entries][:n]
    if seconds:
        print(f"bank {key}: generated in {seconds:.0f} s", flush=True)
    made = {"folder": str(root), "steps": steps, "scheduler": scheduler, "options": options or {},
            "gate": {**{k: v for k, v in gate.items() if k != "real"}, **gate_tally(made_chunks)} if gate else None,
            "pairs": {k or "unlabelled": len(v) for k, v in entries.items()}}
    return Bank(key, entries, seconds, made)


def gate_tally(chunks: list[Path]) -> dict:
    """Draws the gate made for these chunks and how many it rejected (their manifests): its cost here."""
    draws = kept = 0
    for c in chunks:
        manifest = json.loads((c / "pairs.json").read_text(encoding="utf-8"))
        draws += manifest["gate"]["draws"]
        kept += len(manifest["pairs"])
    return {"draws": draws, "rejected": draws - kept}


def bank_need(n_real: int, conditions: list, shares: dict, background: str = "synthetic") -> dict:
    """Pairs per class the largest synthetic ratio with this background takes (smaller ratios use a
    subset of the same bank)."""
    need = {label: 0 for label in shares}
    for c in conditions:
        if not c.synthetic or c.background != background:
            continue
        for label, n in class_counts(round(c.pool_ratio * n_real), shares).items():
            need[label] = max(need[label], n)
    return need


def bank_subset(bank: Bank, n: int, shares: dict, seed: int, pool_counts: dict | None = None) -> PairBank:
    """``n`` bank pairs at the real class shares, the first ones of a per-seed shuffle of each class.

    A fixed subset of the ratio's size (not the whole bank cycled through)
    keeps "25%" meaning 25% distinct synthetic cases, as the BUS paper's
    pre-generated sets did; taking prefixes nests the ratios within a seed. ``pool_counts``: the
    pairs per class the condition draws from (``Bank.pool``; default: the bank's base pairs).
    """
    picked, entries = [], bank.pool(pool_counts or {})
    for label, k in class_counts(n, shares).items():
        pool = entries[label]
        order = np.random.default_rng([seed, LABEL_ORDER.index(label)]).permutation(len(pool))
        picked += [pool[i] for i in order[:k]]
    return PairBank(picked, bank.record.get("folder"))
