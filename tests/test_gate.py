"""The quality gate (issue 16, item 3): a judge per dataset, redraws below the threshold, recorded and revertible.

The judge is the real one (``recipes/judge-tiny.yaml``: the shipped judge model and objective, trained by the
one training loop for a few steps) on a tiny raw folder; the generator is the tiny test generator. Thresholds
are taken from the judge's own scores of ungated pairs, so some pairs pass and some are redrawn.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synthaug import create_generator
from synthaug.cli import main
from synthaug.data import PairDataset
from synthaug.errors import SynthaugError
from synthaug.expand import expand, revert
from synthaug.gate import (GatedGenerator, GateUnreachable, cached_judge, cases_key, judge_dataset, judge_for,
                           load_judge, with_gate)
from synthaug.io.manifest import MANIFEST_NAME
from synthaug.mix import SyntheticMix
from synthaug.sampling import sample_to_folder
from synthaug.pipelines.base import GENERATOR_INFO, Condition, sample_cases
from synthaug.pipelines.registry import register_generator
from synthaug.training.recipes import load_recipe

from test_expand import make_raw, snapshot, stamps

N = 16


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_generator_dir):
    """A raw folder, its tiny judge (trained once for the module) and a threshold some first draws miss."""
    root = tmp_path_factory.mktemp("gate")
    raw = make_raw(root / "raw", n=12)
    torch.set_num_threads(1)  # earlier tests may have changed it; the tiny judge's weights depend on it
    judge = judge_for(raw, profile="tiny", cache=root / "cache", progress=False)
    model, _ = load_judge(judge)
    pairs = create_generator(str(tiny_generator_dir)).sample(N, seed=0)
    scores = model.dice([p.image for p in pairs], [p.mask for p in pairs])
    threshold = split_scores(scores)
    assert 0 < threshold < 1 and (scores < threshold).any() and (scores >= threshold).any()
    free_cls = free_shape_generator(type(create_generator(str(tiny_generator_dir))))
    free = free_cls(free_cls.build()).save_pretrained(root / "free")
    return {"root": root, "raw": raw, "judge": judge, "model": model, "threshold": threshold,
            "gen": str(tiny_generator_dir), "free": str(free), "first_scores": scores}


def split_scores(scores) -> float:
    """A threshold in the widest gap of ``scores`` between their 10th and 70th percentile (>= 0.001, a few
    pixels of Dice), so some first draws pass and some do not and no score sits on it; most redraws pass,
    so a gated run never runs out of tries."""
    v = np.sort(np.asarray(scores, float))
    lo, hi = int(0.1 * len(v)), int(0.7 * len(v))
    gaps = [(v[i + 1] - v[i], i) for i in range(max(lo, 0), min(hi, len(v) - 1)) if v[i + 1] - v[i] >= 0.001]
    if not gaps:
        pytest.fail(f"the tiny judge's scores have no usable gap: {np.round(v, 4).tolist()}")
    _, i = max(gaps)
    return float((v[i] + v[i + 1]) / 2)


def _conds(k):
    return Condition()


def _gated(world, tries=50):
    return with_gate(create_generator(world["gen"]), world["threshold"], judge=world["judge"], tries=tries)


def test_judge_is_trained_once_per_dataset_and_shared(world):
    weights = world["judge"] / "judge" / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_mtime_ns
    assert judge_for(world["raw"], profile="tiny", cache=world["root"] / "cache", progress=False) == world["judge"]
    assert weights.stat().st_mtime_ns == before  # cached, not retrained
    # the raw folder and a PairDataset of its cases (what SyntheticMix gets) share one judge
    recipe = load_recipe("judge", "tiny")
    as_dataset = judge_dataset(PairDataset.from_raw(world["raw"]), 64)
    assert cases_key(as_dataset, recipe) == cases_key(judge_dataset(world["raw"], 64), recipe)
    assert cached_judge(PairDataset.from_raw(world["raw"]), "tiny", world["root"] / "cache") == world["judge"]
    other = make_raw(world["root"] / "other", n=12, seed=1)
    assert cached_judge(other, "tiny", world["root"] / "cache") is None  # other cases, other judge


def test_gate_keeps_only_pairs_at_or_above_threshold(world):
    t = world["threshold"]
    plain = sample_cases(create_generator(world["gen"]), 0, range(N), _conds)
    gen = _gated(world)
    gated = sample_cases(gen, 0, range(N), _conds)
    rescored = world["model"].dice([p.image for p in gated], [p.mask for p in gated])
    assert (rescored >= t).all()
    for p, q, d, first in zip(plain, gated, rescored, world["first_scores"]):
        assert q.meta["gate"]["dice"] == pytest.approx(d, abs=1e-4)
        if first >= t:  # passed at once: the very pair the ungated generator makes
            assert q.meta["gate"]["draws"] == 1 and np.array_equal(p.image, q.image)
        else:  # redrawn from a derived seed, recorded
            assert q.meta["gate"]["draws"] > 1 and q.meta["gate"]["seed"] != q.meta["seed"]
            assert not np.array_equal(p.image, q.image)
    assert gen.accepted == N and gen.draws > N
    assert gen.rejection_rate == pytest.approx(1 - N / gen.draws)
    again = sample_cases(_gated(world), 0, range(N), _conds)  # a pure function of seed, judge and threshold
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) for a, b in zip(gated, again))


def test_unreachable_gate_raises_with_the_rejection_rate(world):
    gen = with_gate(create_generator(world["gen"]), 0.999, judge=world["judge"], tries=2)
    with pytest.raises(GateUnreachable, match=r"below Dice 0.999 in 2 draws.*rejection rate"):
        gen.sample(4, seed=0)


def free_shape_generator(tiny_cls):
    """The tiny test generator without box conditioning: its masks change from seed to seed, so a redraw
    can pass a gate its first draw missed (with a box, the tiny generator's mask is the box itself)."""

    class FreeShapeGenerator(tiny_cls):
        conditions = frozenset({"label"})

        def save_pretrained(self, path: Path) -> Path:
            super().save_pretrained(path)
            (Path(path) / GENERATOR_INFO).write_text(json.dumps({"generator": "tiny-test-free"}))
            return Path(path)

    return register_generator("tiny-test-free")(FreeShapeGenerator)


def _expansion_threshold(world, tmp_path) -> float:
    """The median judge score of an ungated expansion's cases."""
    plain = shutil.copytree(world["raw"], tmp_path / "plain" / world["raw"].name)
    expand(plain, ratio=1.0, generator=world["free"])
    synth = [r for r in PairDataset.from_raw(plain, include_synthetic=True).records if r.synthetic]
    scores = world["model"].dice([r.image for r in synth], [r.mask for r in synth])
    t = split_scores(scores)
    assert 0 < t < 1 and (scores < t).any()
    return t


def test_expand_with_gate_records_scores_and_reverts_exactly(world, tmp_path):
    t = _expansion_threshold(world, tmp_path)
    raw = shutil.copytree(world["raw"], tmp_path / world["raw"].name)
    before = snapshot(raw)
    report = expand(raw, ratio=1.0, generator=world["free"], gate_dice=t, judge=world["judge"])
    m = json.loads((raw / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert m["generator"]["gate"]["dice"] == t
    assert m["generator"]["gate"]["judge"] == load_judge(world["judge"])[1]
    scores = [e["gate"]["dice"] for e in m["cases"].values()]
    assert len(scores) == 12 and min(scores) >= t - 1e-4
    draws = sum(e["gate"]["draws"] for e in m["cases"].values())
    assert m["gate"]["draws"] == draws > 12 and m["gate"]["rejection_rate"] == pytest.approx(1 - 12 / draws, abs=1e-4)
    assert report["gate"]["seconds_per_accepted_pair"] > 0
    mid = stamps(raw)
    again = expand(raw, ratio=1.0, generator=world["free"], gate_dice=t, judge=world["judge"])
    assert again["added"] == 0 and stamps(raw) == mid  # idempotent with the gate on
    with pytest.raises(SynthaugError):  # another gate makes other pixels: refused, not mixed in
        expand(raw, ratio=1.0, generator=world["free"], gate_dice=0.1, judge=world["judge"])
    revert(raw)
    assert snapshot(raw) == before


def test_expand_gate_that_cannot_be_met_writes_nothing(world, tmp_path):
    raw = shutil.copytree(world["raw"], tmp_path / world["raw"].name)
    before = snapshot(raw)
    with pytest.raises(SynthaugError, match="nothing was written"):
        expand(raw, ratio=1.0, generator=world["gen"], gate_dice=0.999, gate_tries=2, judge=world["judge"])
    assert snapshot(raw) == before


def test_sample_cli_gate(world, tmp_path):
    out = tmp_path / "bank"
    res = CliRunner().invoke(main, ["sample", "--generator", world["gen"], "-n", "8", "--out", str(out),
                                    "--gate-dice", f"{world['threshold']:.6f}", "--judge", str(world["judge"])])
    assert res.exit_code == 0, res.output
    info = json.loads((out / "pairs.json").read_text(encoding="utf-8"))
    assert info["gate"]["judge"] == load_judge(world["judge"])[1] and info["gate"]["draws"] >= 8
    assert f"the gate kept 8 of {info['gate']['draws']} drawn" in res.output
    assert all(p["gate"]["dice"] >= round(world["threshold"], 6) - 1e-4 for p in info["pairs"].values())
    bad = tmp_path / "never"
    res = CliRunner().invoke(main, ["sample", "--generator", world["gen"], "-n", "4", "--out", str(bad),
                                    "--gate-dice", "0.999", "--gate-tries", "2", "--judge", str(world["judge"])])
    errors = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert res.exit_code == 2 and len(errors) == 1 and "nothing was written" in errors[0] and not bad.exists()
    res = CliRunner().invoke(main, ["sample", "--generator", world["gen"], "-n", "4", "--out", str(bad),
                                    "--gate-dice", "0.5"])
    assert res.exit_code == 2 and "Error:" in res.output and "--gate-data" in res.output and not bad.exists()
    res = CliRunner().invoke(main, ["sample", "-n", "4", "--out", str(bad), "--gate-dice", "1.5"])
    assert res.exit_code == 2 and "--gate-dice" in res.output and not bad.exists()


def test_syntheticmix_gate(world, tmp_path):
    real = PairDataset.from_raw(world["raw"], size=32)
    mix = SyntheticMix(real, create_generator(world["free"]), ratio=1.0, gate_dice=world["threshold"],
                       judge=world["judge"])
    report = mix.gate_report
    # whole blocks of 8 are generated (and gated), so at least as many pairs as asked for
    assert report["accepted"] >= len(real) and report["draws"] > report["accepted"] and report["rejection_rate"] > 0
    assert all(p.meta["gate"]["dice"] >= world["threshold"] - 1e-4 for p in mix._pairs)
    assert isinstance(mix._generator, GatedGenerator)
    with pytest.raises(SynthaugError, match="generator source"):
        SyntheticMix(real, sample_to_folder(world["gen"], 4, tmp_path / "bank"), ratio=1.0, gate_dice=0.5)


def test_judge_folder_must_be_a_judge(world, tmp_path):
    with pytest.raises(SynthaugError, match="not a quality-judge checkpoint"):
        with_gate(create_generator(world["gen"]), 0.5, judge=tmp_path)
    with pytest.raises(SynthaugError, match="strictly between 0 and 1"):
        with_gate(create_generator(world["gen"]), 1.0, judge=world["judge"])


def test_gated_expand_resumes_to_the_uninterrupted_result(world, tmp_path, monkeypatch):
    t = _expansion_threshold(world, tmp_path)
    raw = shutil.copytree(world["raw"], tmp_path / "a" / world["raw"].name)
    twin = shutil.copytree(world["raw"], tmp_path / "b" / world["raw"].name)
    calls, original = {"n": 0}, GatedGenerator.sample

    def killed_at_second_block(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(GatedGenerator, "sample", killed_at_second_block)
    with pytest.raises(KeyboardInterrupt):
        expand(raw, ratio=1.0, generator=world["free"], gate_dice=t, judge=world["judge"], batch_size=8)
    monkeypatch.undo()
    assert len(json.loads((raw / MANIFEST_NAME).read_text(encoding="utf-8"))["cases"]) == 8
    expand(raw, ratio=1.0, generator=world["free"], gate_dice=t, judge=world["judge"], batch_size=8)
    expand(twin, ratio=1.0, generator=world["free"], gate_dice=t, judge=world["judge"])
    assert snapshot(raw) == snapshot(twin)


def test_gated_generator_reports_the_engine_that_runs(world):
    inner = create_generator(world["gen"])
    inner.engine = "openvino-test"  # what an OpenVINO-backed generator reports
    assert with_gate(inner, 0.5, judge=world["judge"]).engine == "openvino-test"
