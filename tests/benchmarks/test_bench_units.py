"""Unit tests of the benchmark engine's parts (synthaug.evaluation, benchmarks/bench/driver.py): condition names,
copy-paste, the paired statistics, best-validation checkpoint selection, and the internal test switching to the BUSI test images
when they are present. Tiny and CPU-only (a few seconds in all)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from synthaug.evaluation.conditions import COPY_PASTE, REAL, SYNTHETIC, TrainCondition, parse_conditions  # noqa: E402
from synthaug.evaluation.copypaste import choose_offset, copy_paste_records, feather_alpha, paste, shift  # noqa: E402
from synthaug.evaluation.runs import BestCheckpoint, Task, run_one  # noqa: E402
from synthaug.evaluation.stats import GAIN, LOSS, NONE, case_breakdown, paired_bootstrap, verdict  # noqa: E402
from synthaug.data.datasets import PairDataset, Record  # noqa: E402
from synthaug.errors import SynthaugError  # noqa: E402


# ----------------------------------------------------------------------------- conditions
@pytest.mark.parametrize("name, source, ratio, augment, generator, canonical", [
    ("real", REAL, 0.0, False, None, "real"),
    ("ordinary", REAL, 0.0, True, None, "ordinary"),
    ("copy-paste 100%", COPY_PASTE, 1.0, False, None, "copy-paste 100%"),
    ("copy-paste 50% + ordinary", COPY_PASTE, 0.5, True, None, "copy-paste 50% + ordinary"),
    ("bus 25%", SYNTHETIC, 0.25, False, "bus", "bus 25%"),
    ("  bus   100%+ordinary ", SYNTHETIC, 1.0, True, "bus", "bus 100% + ordinary"),
    ("pig 12.5%", SYNTHETIC, 0.125, False, "pig", "pig 12.5%"),
    ("bus-real 25%", SYNTHETIC, 0.25, False, "bus", "bus-real 25%"),
    ("0%", REAL, 0.0, False, None, "0%"),  # earlier protocol
    ("50%", SYNTHETIC, 0.5, True, None, "50%"),  # earlier protocol: synthetic with ordinary augmentation
])
def test_condition_names_parse_to_what_they_say(name, source, ratio, augment, generator, canonical):
    c = TrainCondition.parse(name)
    assert (c.source, c.ratio, c.augment, c.generator, c.name) == (source, ratio, augment, generator, canonical)
    assert c.synthetic == (source == SYNTHETIC)
    assert c.classical == (source == COPY_PASTE or (source == REAL and augment))


def test_real_background_conditions_use_their_own_bank_of_train_part_backgrounds(monkeypatch, tmp_path):
    from synthaug.evaluation import banks

    rb, full = TrainCondition.parse("bus-real 25%"), TrainCondition.parse("bus 25%")
    assert (rb.background, full.background) == ("real", "synthetic") and rb.file_stem() != full.file_stem()
    shares = {"benign": 0.5, "malignant": 0.5}
    assert banks.bank_need(8, [rb, full], shares, "real") == {"benign": 1, "malignant": 1}
    asked = []
    monkeypatch.setattr(banks, "create_generator", lambda *a, **k: "gen")
    monkeypatch.setattr(banks, "sample_to_folder",
                        lambda gen, n, out, background_from=None, **k: asked.append(background_from) or out.mkdir(
                            parents=True))
    monkeypatch.setattr(banks.PairBank, "open", classmethod(lambda cls, folder: type("B", (), {"entries": []})()))
    record = {"generator": "bus", "checkpoint_hash": "h", "info": {}, "path": "p"}
    train = PairDataset([Record(np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool), None, f"c{i}") for i in range(3)])
    rbank = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4, backgrounds=train)
    fbank = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4)
    assert asked == [train, None]  # the real-background bank repaints the train part, and only it
    assert rbank.key != fbank.key and "realbg" in rbank.key


def test_sampler_options_and_the_gate_make_their_own_bank_and_reach_the_generator(monkeypatch, tmp_path):
    from synthaug.evaluation import banks
    from benchmarks.common import sampler_options

    assert sampler_options(["mask_guidance=4.5", "scheduler_name=ddim"]) == {"mask_guidance": 4.5,
                                                                            "scheduler_name": "ddim"}
    assert sampler_options("match_margin=False,mask_smoothing=auto") == {"match_margin": False, "mask_smoothing": "auto"}
    assert sampler_options(["match_margin=true"]) == {"match_margin": True}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        sampler_options(["mask_guidance"])
    made, sampled = [], []
    monkeypatch.setattr(banks, "create_generator", lambda path, **k: made.append(k) or "gen")

    def sample(gen, n, out, **k):  # a gated chunk's manifest: 4 pairs kept of 6 draws
        sampled.append(k)
        out.mkdir(parents=True)
        if "gate_dice" in k:
            manifest = {"gate": {"draws": 6}, "pairs": {f"p{i}": {} for i in range(4)}}
            (out / "pairs.json").write_text(json.dumps(manifest))

    monkeypatch.setattr(banks, "sample_to_folder", sample)
    monkeypatch.setattr(banks.PairBank, "open", classmethod(lambda cls, folder: type("B", (), {"entries": []})()))
    record = {"generator": "pig", "checkpoint_hash": "h", "info": {}, "path": "p"}
    train = PairDataset([Record(np.zeros((8, 8), np.uint8), np.ones((8, 8), bool), "benign", f"c{i}")
                         for i in range(3)])
    plain = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4)
    guided = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4, options={"mask_guidance": 4.0})
    gated = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4, options={"mask_guidance": 4.0},
                              gate={"dice": 0.5, "real": train, "tries": 7})
    assert len({plain.key, guided.key, gated.key}) == 3 and guided.key.endswith("-mask_guidance4")
    assert made[1]["mask_guidance"] == 4.0 and "mask_guidance" not in made[0]
    assert "gate_dice" not in sampled[1] and (sampled[2]["gate_dice"], sampled[2]["gate_data"],
                                              sampled[2]["gate_tries"]) == (0.5, train, 7)
    assert gated.record["gate"] == {"dice": 0.5, "tries": 7, "draws": 6, "rejected": 2}
    assert guided.record["options"] == {"mask_guidance": 4.0}
    # a bank made in float32 (no native bf16 on this CPU) is another bank: its pixels differ
    monkeypatch.setenv("SYNTHAUG_BF16", "1")
    bf16 = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4).key
    monkeypatch.setenv("SYNTHAUG_BF16", "0")
    fp32 = banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4).key
    assert fp32 == bf16 + "-fp32" and plain.key in (bf16, fp32)
    # a report rewritten here names the bank of the machine that made it, and makes nothing in the other precision
    assert banks.ensure_bank(record, tmp_path, {"benign": 1}, None, None, 4, 4, generate=False, bf16=True).key == bf16
    n_made = len(made)
    with pytest.raises(SynthaugError, match="cannot be made here"):
        banks.ensure_bank(record, tmp_path / "new", {"benign": 1}, None, None, 4, 4, bf16=True)
    assert len(made) == n_made


def _report(path: Path, runs: list[dict], bank: dict | None = None) -> Path:
    path.write_text(json.dumps({"runs": runs, "bank": bank}))
    return path


def _run(condition: str, seed: int, bf16: bool = True) -> dict:
    return {"model": "unet-lite0", "condition": condition, "seed": seed, "settings": {"epochs": 40, "bf16": bf16}}


def test_report_only_reports_runs_in_their_recorded_precision_and_never_drops_one(tmp_path):
    """--report-only on a CPU without native bf16: it takes the precision the runs recorded (nothing trains), and
    a work folder missing some of a report's runs stops it before the report is rewritten emptier."""
    from benchmarks.bench.driver import adopt_recorded_precision, recorded_bank, refuse_dropping_runs

    report = _report(tmp_path / "r.json", [_run("real", 0), _run("bus 100%", 0), _run("real", 1)],
                     bank={"folder": "/elsewhere/banks/bus-abc-dpm++-20", "pairs": {"benign": 9}})
    plan = {"models": ["unet-lite0"], "conditions": parse_conditions("real,bus 100%"), "seeds": [0],
            "settings": {"epochs": 40, "bf16": False}}
    adopt_recorded_precision(plan, [report, tmp_path / "missing.json"])
    assert plan["settings"]["bf16"] is True
    mixed = {**plan, "settings": {"epochs": 40, "bf16": False}}
    adopt_recorded_precision(mixed, [report, _report(tmp_path / "f.json", [_run("real", 2, bf16=False)])])
    assert mixed["settings"]["bf16"] is False  # runs of both precisions: the machine's plan stands
    refuse_dropping_runs(report, plan, [_run("real", 0), _run("bus 100%", 0)], tmp_path)  # seed 1 not planned
    with pytest.raises(SynthaugError, match="would drop 1 finished runs it records: they are not in"):
        refuse_dropping_runs(report, plan, [_run("real", 0)], tmp_path)
    with pytest.raises(SynthaugError, match=r"other settings \(bf16\)"):
        refuse_dropping_runs(report, {**plan, "settings": {"epochs": 40, "bf16": False}}, [], tmp_path)
    refuse_dropping_runs(tmp_path / "new.json", plan, [], tmp_path)  # no report yet: nothing to keep
    assert recorded_bank(report, "bus-abc-dpm++-20")["pairs"] == {"benign": 9}
    assert recorded_bank(report, "bus-abc-dpm++-20-fp32") is None and recorded_bank(tmp_path / "no.json", "k") is None


@pytest.mark.parametrize("bad", ["bus", "bus 0%", "25", "bus 25% + flip", "real + ordinary", "Bus 25%", ""])
def test_unknown_condition_names_are_refused(bad):
    with pytest.raises(SynthaugError, match="unknown condition"):
        TrainCondition.parse(bad)


def test_condition_lists_parse_from_one_string_and_file_stems_are_distinct():
    conds = parse_conditions("real,ordinary,bus 25%,bus 25% + ordinary,copy-paste 100%,0%,25%")
    stems = [c.file_stem() for c in conds]
    assert len(set(stems)) == len(stems) and all(" " not in s and "%" not in s for s in stems)
    assert conds[5].file_stem() == "0pct"  # the earlier protocol's run files keep their names
    with pytest.raises(SynthaugError, match="duplicate"):
        parse_conditions(["bus 25%", "bus  25%"])


# ----------------------------------------------------------------------------- copy-paste
def disk(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_paste_mask_is_the_union_and_the_image_changes_only_within_the_feather():
    rng = np.random.default_rng(0)
    shape, feather = (64, 64), 5.0
    t_img, d_img = rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8)
    t_mask, d_mask = disk(shape, 16, 16, 6), disk(shape, 40, 44, 7)
    offset = choose_offset(np.random.default_rng(1), t_mask, d_mask, feather)
    assert offset is not None
    image, mask, alpha = paste(t_img, t_mask, d_img, d_mask, offset, feather)
    lesion = shift(d_mask, *offset, False)
    assert np.array_equal(mask, t_mask | lesion)  # the union of the target's mask and the pasted lesion
    assert not (lesion & t_mask).any()  # placed off the target's lesion
    far = feather_alpha(lesion, feather) == 0
    from scipy.ndimage import distance_transform_edt
    assert np.array_equal(far, distance_transform_edt(~lesion) >= feather)  # the feathered region is that band
    assert np.array_equal(image[far], t_img[far])  # unchanged outside it
    assert np.array_equal(image[lesion], shift(d_img, *offset, 0)[lesion])  # the lesion keeps its own pixels
    band = ~far & ~lesion
    assert band.any() and ((alpha[band] > 0) & (alpha[band] < 1)).all()  # a real blend at the margin


def test_copy_paste_records_are_distinct_composites_of_real_cases():
    rng = np.random.default_rng(0)
    records = [Record(rng.integers(0, 256, (48, 48), dtype=np.uint8), disk((48, 48), 12 + 8 * k, 20 + 5 * k, 5),
                      "benign", f"c{k}") for k in range(4)]
    out = copy_paste_records(records, 6, seed=3, feather=4)
    assert len(out) == 6 and all(r.label is None and r.case_id.startswith("copypaste_") for r in out)
    for r in out:
        target = next(x for x in records if r.case_id.split("_", 1)[1].split("+")[0] == x.case_id)
        assert (r.mask >= target.mask).all() and r.mask.sum() > target.mask.sum()  # target's lesion + one more
    again = copy_paste_records(records, 6, seed=3, feather=4)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(out, again))  # fixed per seed


# ----------------------------------------------------------------------------- statistics
def test_verdict_rule():
    assert verdict(0.01, 0.05) == GAIN and verdict(-0.05, -0.01) == LOSS
    assert verdict(-0.01, 0.02) == NONE and verdict(0.0, 0.02) == NONE


def test_paired_bootstrap_finds_a_known_gain_a_known_loss_and_nothing():
    rng = np.random.default_rng(0)
    base = {s: rng.uniform(0.5, 0.9, 100) for s in range(3)}
    gain = {s: base[s] + 0.05 + rng.normal(0, 0.02, 100) for s in range(3)}
    res = paired_bootstrap(gain, base)
    assert res["verdict"] == GAIN and res["ci"][0] < 0.05 < res["ci"][1] and res["n_seeds"] == 3
    assert abs(res["diff"] - 0.05) < 0.01 and len(res["per_seed"]) == 3
    loss = {s: base[s] - 0.05 + rng.normal(0, 0.02, 100) for s in range(3)}
    assert paired_bootstrap(loss, base)["verdict"] == LOSS
    noise = {s: base[s] + rng.normal(0, 0.05, 100) for s in range(3)}
    res = paired_bootstrap(noise, base)
    assert res["verdict"] == NONE and res["ci"][0] < 0 < res["ci"][1]
    assert paired_bootstrap({0: base[0]}, {1: base[1]}) == {}  # nothing paired, nothing claimed


def test_paired_bootstrap_of_auc():
    labels = np.array([0] * 30 + [1] * 20)
    rng = np.random.default_rng(1)
    perfect = {s: labels + rng.uniform(0, 0.5, 50) for s in range(2)}  # AUC 1
    chance = {s: rng.uniform(0, 1, 50) for s in range(2)}  # AUC about 0.5
    res = paired_bootstrap(perfect, chance, metric="auc", labels=labels)
    assert res["verdict"] == GAIN and 0.3 < res["diff"] < 0.7 and res["ci"][1] <= 1.0


def test_case_breakdown_tells_a_few_failures_from_a_broad_shift():
    rng = np.random.default_rng(2)
    ids = [f"c{i}" for i in range(40)]
    base = {s: rng.uniform(0.7, 0.9, 40) for s in range(2)}
    few = {s: base[s].copy() for s in range(2)}
    for s in range(2):
        few[s][[3, 7]] = 0.0  # two cases missed on both seeds, the rest unchanged
    b = case_breakdown(few, base, ids)
    assert b["median_case_diff"] == 0.0 and b["share_worse"] == 0.05 and sorted(b["failed"]) == ["c3", "c7"]
    assert {b["worst"][0][0], b["worst"][1][0]} == {"c3", "c7"} and b["worst"][0][2] == 0.0
    shift = {s: base[s] - 0.03 for s in range(2)}
    b = case_breakdown(shift, base, ids)
    assert abs(b["median_case_diff"] + 0.03) < 1e-9 and b["share_worse"] == 1.0 and b["failed"] == []
    assert case_breakdown({0: base[0]}, {1: base[1]}, ids) == {}


# ----------------------------------------------------------------------------- best-validation checkpoint
def test_best_checkpoint_keeps_the_first_best_epoch():
    model, best = torch.nn.Linear(2, 1), BestCheckpoint()
    weights = []
    for epoch, score in enumerate([0.2, 0.6, 0.4, 0.6, float("nan")], 1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        weights.append(epoch)
        best.update(epoch, score, model)
    assert best.epoch == 2 and best.score == 0.6
    assert torch.all(best.restore(model).weight == 2)


def test_run_reports_the_best_validation_checkpoint_and_stops_on_patience():
    """A whole run_one with a scripted validation score: test scores come from the best epoch's weights."""
    from integrations.smp_timm._loop import fit

    torch.manual_seed(0)
    records = [Record(np.full((8, 8), 40 * k, np.uint8), disk((8, 8), 4, 4, 2), "benign", f"c{k}") for k in range(4)]
    data = {"train": PairDataset(records), "val": PairDataset(records[:2]), "internal": PairDataset(records[2:])}
    scripted = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.9])  # epoch 6 would be better, but patience 3 stops at epoch 5
    fingerprints = []

    def evaluate(model, ds, bf16):
        fp = float(sum(p.detach().double().sum() for p in model.parameters()))
        if ds is data["val"] and not getattr(evaluate, "done", False):  # during training
            fingerprints.append(fp)
            return {"m": next(scripted)}
        return {"m": fp}

    def train(model, ds, epochs, **kw):
        out = fit(model, ds, lambda m, b: (m(b["image"]) - b["mask"]).pow(2).mean(), epochs, **kw)
        evaluate.done = True
        return out

    task = Task("toy", "toy", ("m",), {"m": "M"}, lambda _: torch.nn.Conv2d(1, 1, 3, padding=1), train, evaluate, {})
    s = {"epochs": 10, "batch_size": 2, "lr": 0.05, "bf16": False, "select": "best-val", "patience": 3}
    run = run_one(task, "toy", TrainCondition.parse("real"), 0, data, None, {None: 1.0}, s)
    assert run["best_epoch"] == 2 and run["epochs_run"] == 5 and len(run["curve"]) == 5
    assert [p["val"]["m"] for p in run["curve"]] == [0.1, 0.5, 0.3, 0.2, 0.4]
    assert len(set(fingerprints)) == 5  # the weights did change every epoch
    assert run["metrics"]["internal"]["m"] == pytest.approx(fingerprints[1])  # epoch 2's weights, not the last


# ----------------------------------------------------------------------------- internal test
def fake_busi(root: Path, real: Path, train: list[str], test: list[str], with_test_images: bool) -> Path:
    """A BUSI folder of symlinks to real images: ``test`` names are the fake split's test part."""
    folder = root / "BUSI" / "Dataset_BUSI_with_GT"
    for cls in ("benign", "malignant"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
    for name in train + (test if with_test_images else []):
        cls, stem = name.split("/")
        for p in (real / "Dataset_BUSI_with_GT" / cls).glob(f"{stem}*.png"):
            if p.stem == stem or p.stem.startswith(stem + "_mask"):
                (folder / cls / p.name).symlink_to(p)
    (root / "BUSI" / "split.json").write_text(json.dumps({"train": train, "test": test}))
    return root


@pytest.mark.parametrize("with_test_images", [True, False])
def test_busi_test_images_become_the_internal_test_when_present(busi_root, tmp_path, monkeypatch, with_test_images):
    from benchmarks.bench.driver import benchmark_splits

    names = json.loads((busi_root / "split.json").read_text())["train"]
    benign = [n for n in names if n.startswith("benign/")]
    malignant = [n for n in names if n.startswith("malignant/")]
    train, test = benign[:20] + malignant[:10], benign[20:26] + malignant[10:14]
    fake_busi(tmp_path, busi_root, train, test, with_test_images)
    monkeypatch.setenv("SYNTHAUG_DATA", str(tmp_path))
    split = benchmark_splits(size=32, cases=None, external=False)
    sets, labels = split["sets"], split["names"]
    if with_test_images:  # no change of command: the test images are the internal test
        assert labels["internal"] == "BUSI test split" and not labels["test_withheld"]
        assert len(sets["internal"]) == 10 and len(sets["train"]) + len(sets["val"]) == 30
    else:
        assert labels["internal"].startswith("BUSI validation part of train") and labels["test_withheld"]
        assert len(sets["train"]) + len(sets["val"]) + len(sets["internal"]) == 30
    ids = [{r.case_id for r in sets[k].records} for k in ("train", "val", "internal")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


@pytest.mark.parametrize("withheld", [True, False])
def test_scores_on_cases_the_generator_saw_are_flagged_optimistic(withheld):
    from synthaug.evaluation.report import optimistic

    meta = {"generator": {"ref": "bus"}, "split_names": {"test_withheld": withheld}}
    bus, real = TrainCondition.parse("bus 25%"), TrainCondition.parse("ordinary")
    assert optimistic(meta, bus, "val")  # validation is always inside the train split
    assert optimistic(meta, bus, "internal") == withheld  # the carved internal test only while withheld
    assert not optimistic(meta, bus, "external") and not optimistic(meta, real, "val")
    assert not optimistic({**meta, "generator": None}, bus, "val")


def records_named(prefix: str, n: int) -> list[Record]:
    return [Record(np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool), "benign", f"{prefix}{i}") for i in range(n)]


def test_a_generator_fit_on_part_of_the_train_part_is_not_flagged_on_sets_it_never_saw():
    """The own-data control: a generator whose recorded training cases miss validation and both tests has
    clean scores everywhere; the count comes from its case ids, not from an assumption."""
    from benchmarks.bench.driver import seen_cases
    from synthaug.evaluation.report import generator_notes, optimistic

    sets = {"train": PairDataset(records_named("t", 4)), "val": PairDataset(records_named("v", 2)),
            "internal": PairDataset(records_named("i", 3))}
    own = {"info": {"training_data": {"case_ids": ["t0", "t1"]}}}
    shipped = {"info": {"training_data": {"case_ids": ["t0", "t1", "t2", "t3", "v0", "v1", "i0", "i1", "i2"]}}}
    assert seen_cases(own, sets) == {"val": 0, "internal": 0}
    assert seen_cases(shipped, sets) == {"val": 2, "internal": 3}
    assert seen_cases({"info": {}}, sets) == {}  # no ids recorded: cannot tell
    bus = TrainCondition.parse("bus 100%")
    for gen, flagged in ((own, False), (shipped, True), ({}, True)):
        meta = {"generator": {"ref": "bus", "seen_cases": seen_cases(gen, sets) if gen else {}},
                "split_names": {"test_withheld": True}}
        assert optimistic(meta, bus, "val") == flagged and optimistic(meta, bus, "internal") == flagged
    record = {"ref": "own", "generator": "bus", "checkpoint_hash": "h", "conditions": [], "card_data": "x",
              "training_cases": 2, "busi_train_only": True, "busi_train_cases": 9, "seen_cases": {"internal": 0}}
    notes = " ".join(generator_notes(record, None, {"test_withheld": True, "external": "STU"}))
    assert "trained on none of them" in notes and "flatter" not in notes
    notes = " ".join(generator_notes({**record, "seen_cases": {"internal": 3}}, None, {"test_withheld": True}))
    assert "trained on 3 of the internal-test cases, which can flatter" in notes


def test_run_settings_record_the_precision_carried_out(monkeypatch):
    """A run asked for in bf16 on a CPU without native bf16 trains in float32: its settings (and so the run
    folder's hash) say float32, so it is never mixed with bf16 runs of the same matrix."""
    from benchmarks.bench.driver import make_plan, parse_args
    from benchmarks.seg import SEGMENTATION

    monkeypatch.setenv("SYNTHAUG_BF16", "0")
    assert make_plan(SEGMENTATION, parse_args(SEGMENTATION, ["--profile", "converged"]))["settings"]["bf16"] is False
    monkeypatch.setenv("SYNTHAUG_BF16", "1")
    plans = [make_plan(SEGMENTATION, parse_args(SEGMENTATION, ["--profile", "converged"] + extra))
             for extra in ([], ["--no-bf16"])]
    assert [p["settings"]["bf16"] for p in plans] == [True, False]


def test_report_states_what_the_gate_rejected_making_the_bank():
    from synthaug.evaluation.report import generator_notes

    gen = {"ref": "checkpoints/pig-busi-128", "generator": "pig", "checkpoint_hash": "h", "conditions": ["label"],
           "card_data": "BUSI", "busi_train_only": True, "training_cases": 518, "busi_train_cases": 518}
    bank = {"pairs": {"benign": 3}, "scheduler": "dpm++", "steps": 20,
            "gate": {"dice": 0.5, "tries": 20, "draws": 362, "rejected": 10}}
    text = "\n".join(generator_notes(gen, bank, {}))
    assert "Dice >= 0.5, up to 20 draws per pair; making the bank it rejected 10 of 362 draws (2.8%)." in text
    del bank["gate"]["draws"], bank["gate"]["rejected"]  # a bank record written before the tally
    assert "up to 20 draws per pair." in "\n".join(generator_notes(gen, bank, {}))
