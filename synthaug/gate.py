"""The quality gate: keep a generated pair only if a segmenter trained on real data finds its mask.

``with_gate(generator, dice, judge)`` wraps any pair generator. Every pair is
scored by the judge (``models.judge``: a U-Net trained on the dataset's real
training cases only) as the Dice of its prediction against the pair's mask; a
pair below the threshold is redrawn with seeds derived from its own
(``gate_seed``), all rejected pairs of a block together, until it passes or
``tries`` draws are spent, which raises ``GateUnreachable`` naming the
rejection rate. Every draw is a pure function of (checkpoint, seed, block,
judge, threshold), so gated expansions stay deterministic and resumable.

The judge is trained once per dataset (``judge_for``) and cached under
``cache_root()/judges/<hash of the real cases and the recipe>``: outside the
raw folder so ``revert`` stays exact, and shared by ``expand``, ``sample``
and ``SyntheticMix`` on the same cases. Its content hash goes in manifests.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
from filelock import FileLock

from .data.datasets import PairDataset
from .errors import SynthaugError
from .paths import cache_root
from .pipelines.base import Condition, Pair, PairGenerator, checkpoint_hash, load_errors, pair_seeds, verify_checkpoint

JUDGE_RECIPE = "cpu-128"
DEFAULT_TRIES = 20  # draws per pair: a threshold that needs more is treated as unreachable
_GATE_SALT = 0x6A7E


class GateUnreachable(SynthaugError):
    """A pair stayed below the threshold in every allowed draw."""


def gate_seed(seed: int, attempt: int) -> int:
    """Seed of the ``attempt``-th gate redraw of pair ``seed`` (apart from the small-mask redraws)."""
    state = np.random.SeedSequence([int(seed), int(attempt), _GATE_SALT]).generate_state(2, np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


def check_gate(dice, tries: int = DEFAULT_TRIES) -> None:
    if isinstance(dice, bool) or not isinstance(dice, (int, float)) or not 0 < dice < 1:
        raise SynthaugError(f"--gate-dice must be a Dice threshold strictly between 0 and 1, not {dice!r}")
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise SynthaugError(f"--gate-tries must be an integer >= 1, not {tries!r}")


# ----------------------------------------------------------------------------- the judge
def judge_dataset(real, resolution: int) -> PairDataset:
    """The real training cases the judge learns from, at its resolution: a raw folder or BUSI release
    (training cases only, never synthetic ones) or a ``PairDataset`` (its records, without its transform)."""
    if isinstance(real, PairDataset):
        return PairDataset([tuple(r) for r in real.records if not getattr(r, "synthetic", False)], size=resolution)
    if isinstance(real, (str, Path)):
        from .training.data import training_dataset

        return training_dataset(real, size=resolution)
    raise SynthaugError(f"the quality gate trains its judge on a raw folder or a PairDataset, not a "
                        f"{type(real).__name__}; or pass judge=PATH")


def cases_key(dataset: PairDataset, recipe: dict) -> str:
    """Hash of the cases (ids, pixels, masks, labels) and the judge recipe: the judge cache key."""
    h = hashlib.sha256(json.dumps({k: recipe[k] for k in ("objective", "model", "train")}, sort_keys=True).encode())
    for r in sorted(dataset.records, key=lambda r: r.case_id):
        h.update(f"{r.case_id}|{r.label}|{r.image.shape}".encode())
        h.update(np.ascontiguousarray(r.image).tobytes())
        h.update(np.packbits(r.mask).tobytes())
    return h.hexdigest()[:16]


def _judge_run(real, profile: str, cache) -> tuple[Path, dict, PairDataset]:
    from .training.recipes import load_recipe

    recipe = load_recipe("judge", profile)
    dataset = judge_dataset(real, recipe["model"].get("resolution", 128))
    root = Path(cache) if cache else cache_root() / "judges"
    return root / cases_key(dataset, recipe), recipe, dataset


def judge_key(real, profile: str = JUDGE_RECIPE) -> str:
    """The judge's cache name for the real cases ``real``: known before (and without) training it."""
    return _judge_run(real, profile, None)[0].name


def cached_judge(real, profile: str = JUDGE_RECIPE, cache: str | Path | None = None) -> Path | None:
    """The cached judge of ``real``, or None (never trains)."""
    final = _judge_run(real, profile, cache)[0] / "final"
    return final if (final / "judge").is_dir() else None


def judge_for(real, profile: str = JUDGE_RECIPE, cache: str | Path | None = None, progress: bool = True) -> Path:
    """The judge checkpoint for the real cases ``real``: from the cache, or trained now (one process trains,
    others wait on a lock). Returns the checkpoint folder (``.../final``)."""
    from .training.run import run_recipe

    run, recipe, dataset = _judge_run(real, profile, cache)
    root, final = run.parent, run / "final"
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(run) + ".lock"):
        if not (final / "judge").is_dir():
            t0 = time.time()
            if progress:
                print(f"quality gate: training its judge on {len(dataset)} real cases (once per dataset) -> {run}",
                      flush=True)
            run_recipe(recipe, data=str(real) if isinstance(real, (str, Path)) else "PairDataset", out=run,
                       dataset=dataset, progress=progress)
            if progress:
                print(f"quality gate: judge trained in {time.time() - t0:.0f} s", flush=True)
    return final


def load_judge(path: str | Path):
    """A judge checkpoint folder -> (JudgeSegmenter in eval mode, content hash)."""
    from .models.judge import JudgeSegmenter

    path = Path(path)
    if not (path / "judge").is_dir():
        raise SynthaugError(f"{path} is not a quality-judge checkpoint (no judge/ folder); "
                            "make one with `synthaug train judge --data RAW --out DIR` (DIR/final)")
    verify_checkpoint(path)
    with load_errors(path):
        model = JudgeSegmenter.from_pretrained(str(path / "judge"))
    return model.eval(), checkpoint_hash(path)


# ----------------------------------------------------------------------------- the gated generator
class GatedGenerator(PairGenerator):
    """``inner`` whose pairs all score at least ``threshold`` Dice with ``judge``; ``meta["gate"]`` holds each
    pair's score, draws and the seed that made it; ``draws``/``accepted`` count over the generator's life."""

    def __init__(self, inner: PairGenerator, judge, threshold: float, tries: int = DEFAULT_TRIES,
                 judge_hash: str = "unsaved"):
        check_gate(threshold, tries)
        self.inner, self.judge, self.threshold, self.tries = inner, judge, float(threshold), int(tries)
        self.judge_hash = judge_hash
        self.name, self.conditions = inner.name, inner.conditions
        self.resolution, self.checkpoint_path = inner.resolution, inner.checkpoint_path
        self.engine = getattr(inner, "engine", "torch")
        self.draws = self.accepted = 0
        self.seconds = 0.0

    def __getattr__(self, name):  # the wrapped generator's other attributes (pipe, backgrounds, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def rejection_rate(self) -> float:
        return 1 - self.accepted / self.draws if self.draws else 0.0

    def describe(self) -> dict:
        return {"dice": self.threshold, "tries": self.tries, "judge": self.judge_hash}

    def sample(self, n=None, *, seed: int = 0, seeds: Sequence[int] | None = None,
               conditions: Sequence[Condition | None] | None = None, batch_size: int = 16,
               progress: bool = False) -> list[Pair]:
        t0 = time.time()
        seeds = list(pair_seeds(seed, n) if seeds is None else seeds)
        conds = [c or Condition() for c in (conditions or [None] * len(seeds))]
        pairs = self.inner.sample(seeds=seeds, conditions=conds, batch_size=batch_size, progress=progress)
        scores = self._score(pairs)
        draws = [1] * len(pairs)
        used = list(seeds)
        best = list(scores)
        attempt = 0
        while (failing := [i for i, d in enumerate(scores) if d < self.threshold]):
            attempt += 1
            if attempt >= self.tries:
                self._count(draws, accepted=len(pairs) - len(failing), seconds=time.time() - t0)
                i = failing[0]
                raise GateUnreachable(
                    f"quality gate: pair seed {seeds[i]} ({conds[i].to_dict()}) stayed below Dice {self.threshold:g} "
                    f"in {self.tries} draws (best {best[i]:.3f}); {self.draws} draws so far, rejection rate "
                    f"{self.rejection_rate:.0%}: lower --gate-dice or raise --gate-tries")
            redraw_seeds = [gate_seed(seeds[i], attempt) for i in failing]
            redrawn = self.inner.sample(seeds=redraw_seeds, conditions=[conds[i] for i in failing],
                                        batch_size=batch_size)
            for i, s, p, d in zip(failing, redraw_seeds, redrawn, self._score(redrawn)):
                pairs[i], scores[i], used[i], draws[i], best[i] = p, d, s, draws[i] + 1, max(best[i], d)
        for p, s, d, k, drawn_seed in zip(pairs, seeds, scores, draws, used):
            p.meta["seed"] = int(s)  # the pair's own seed; the gate redraw's seed is in meta["gate"]
            p.meta["gate"] = {"dice": round(float(d), 4), "draws": k, **({"seed": int(drawn_seed)} if k > 1 else {})}
        self._count(draws, accepted=len(pairs), seconds=time.time() - t0)
        return pairs

    def _score(self, pairs: list[Pair]) -> list[float]:
        return [float(d) for d in self.judge.dice([p.image for p in pairs], [p.mask for p in pairs])]

    def _count(self, draws: list[int], accepted: int, seconds: float) -> None:
        self.draws += sum(draws)
        self.accepted += accepted
        self.seconds += seconds


def with_gate(generator: PairGenerator, dice: float | None, real=None, judge: str | Path | None = None,
              tries: int = DEFAULT_TRIES, profile: str = JUDGE_RECIPE) -> PairGenerator:
    """``generator`` itself when ``dice`` is None, else gated at ``dice`` by ``judge`` (a judge checkpoint),
    or by the cached judge of the real cases ``real`` (trained first if there is none)."""
    if dice is None:
        return generator
    check_gate(dice, tries)
    if judge is None:
        if real is None:
            raise SynthaugError("the quality gate needs the real training cases its judge learns from "
                                "(--gate-data RAW) or a trained judge (--judge DIR)")
        judge = judge_for(real, profile=profile)
    model, identity = load_judge(judge)
    return GatedGenerator(generator, model, dice, tries, judge_hash=identity)
