"""synthaug expand / revert / splits on tiny raw folders (and once on the converted BUSI).

The tiny folders are built here by ``make_raw`` (also imported by the other
raw-dataset tests); the tiny test generator of conftest.py generates 32x32
pairs in milliseconds, so every scenario runs for real: kill + resume,
shards, ratio changes, splits and exact revert.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2.utilities.crossval_split import generate_crossval_split

import synthaug.expand.identity as expand_identity
import synthaug.expand.run as expand_run
from synthaug.data.conditions import ConditionSampler, restrict
from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.expand import expand, revert, write_splits
from synthaug.io.images import read_mask, sha256_file, write_png
from synthaug.io.manifest import MANIFEST_NAME, part_name
from synthaug.io.nnunet_raw import RawDataset
from synthaug.pipelines.base import Condition, PairGenerator
from synthaug.pipelines.registry import create_generator

TESTS = Path(__file__).parent
LABELS6 = ("benign", "malignant", "benign", "benign", "malignant", "benign")


# ----------------------------------------------------------------------------- helpers
def make_raw(parent: Path, n: int = 6, name: str = "Dataset990_Tiny", labels=LABELS6, metadata: bool = True,
             case_prefix: str = "case_", seed: int = 0) -> Path:
    """A 2D nnU-Net v2 raw folder: noise images of two sizes with one rectangular lesion each,
    dataset.json from nnU-Net's own generate_dataset_json, case_metadata.json with labels and
    (for even cases only, so both box sources are exercised) boxes. Deterministic in ``seed``."""
    root = parent / name
    rng = np.random.default_rng(seed)
    meta = {}
    for i in range(n):
        case = f"{case_prefix}{i:03d}"
        h, w = (24, 32) if i % 2 else (32, 32)
        mask = np.zeros((h, w), np.uint8)
        y, x = (int(v) for v in rng.integers(1, 12, 2))
        mask[y : y + 6 + i, x : x + 8] = 1
        write_png(root / "imagesTr" / f"{case}_0000.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        write_png(root / "labelsTr" / f"{case}.png", mask)
        entry = {"label": labels[i % len(labels)] if labels else None, "split": "train", "original_size": [h, w]}
        if i % 2 == 0:
            entry["box"] = [x / w, y / h, (x + 8) / w, min(y + 6 + i, h) / h]
        meta[case] = entry
    generate_dataset_json(str(root), {0: "ultrasound"}, {"background": 0, "lesion": 1}, n, ".png", dataset_name=name)
    if metadata:
        (root / "case_metadata.json").write_text(json.dumps({"source": "test", "cases": meta}))
    return root


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def stamps(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def real_files(snap: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in snap.items() if "/synth" not in k and MANIFEST_NAME not in k and k != "dataset.json"}


def manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))


@pytest.fixture
def gen(tiny_generator_dir) -> str:
    return str(tiny_generator_dir)


@pytest.fixture
def raw(tmp_path) -> Path:
    return make_raw(tmp_path / "a")


@pytest.fixture
def twin(tmp_path) -> Path:
    """A byte-identical copy of ``raw`` (same name, other parent) for 'equals an uninterrupted run'."""
    return make_raw(tmp_path / "b")


@pytest.fixture
def preprocessed(tmp_path, monkeypatch) -> Path:
    """$nnUNet_preprocessed with the tiny dataset's folder, as after nnUNetv2_plan_and_preprocess."""
    pre = tmp_path / "preprocessed"
    (pre / "Dataset990_Tiny").mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(pre))
    return pre / "Dataset990_Tiny"


@pytest.fixture(autouse=True)
def _no_preprocessed(monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)


# ----------------------------------------------------------------------------- round trip
def test_round_trip_adds_cases_and_revert_restores_bytes(raw, gen):
    before = snapshot(raw)
    report = expand(raw, 1.0, generator=gen, batch_size=4)
    assert report == {"added": 6, "removed": 0, "merged": 0, "total_synthetic": 6, "real_cases": 6,
                      "manifest": str(raw / MANIFEST_NAME), "splits": None, "dry_run": False}
    ds = RawDataset.open(raw)  # strict: numTraining agrees with the files
    synth = [f"synth_{k:05d}" for k in range(6)]
    assert ds.case_ids() == sorted([f"case_{i:03d}" for i in range(6)] + synth)
    assert ds.dataset_json["numTraining"] == 12
    m = manifest(raw)
    assert m["version"] == 1 and m["prefix"] == "synth_" and m["ratio"] == 1.0 and m["seed"] == 0
    assert m["generator"]["name"] == "tiny-test" and len(m["generator"]["checkpoint_hash"]) == 16
    assert m["pending"] == {} and list(m["cases"]) == synth
    sizes = {tuple(s) for s in ds.case_sizes().values()}
    for k, name in enumerate(synth):
        e = m["cases"][name]
        assert e["index"] == k and e["seed"] == k  # pair_seeds(0, ., k) == k
        assert tuple(e["size"]) in sizes and ds.case_sizes()[name] == tuple(e["size"])
        assert e["image_sha256"] == sha256_file(ds.image_path(name))
        assert set(np.unique(np.asarray(read_mask(ds.label_path(name), threshold=0)))) <= {False, True}
    assert real_files(snapshot(raw)) == real_files(before)

    assert revert(raw)["removed"] == 6
    assert snapshot(raw) == before  # same set of files, same bytes, dataset.json included


def test_generator_gets_real_conditions_and_boxes_are_honoured(raw, gen):
    expand(raw, 2.0, generator=gen)
    ds, m = RawDataset.open(raw), manifest(raw)
    for name, e in m["cases"].items():
        assert e["conditions"]["label"] in ("benign", "malignant")
        x0, y0, x1, y1 = e["conditions"]["box"]
        mask = np.asarray(read_mask(ds.label_path(name), threshold=0))
        ys, xs = np.nonzero(mask)
        h, w = mask.shape  # the tiny generator paints the box at 32x32, then it is resized
        assert abs(xs.min() / w - x0) < 0.1 and abs((ys.max() + 1) / h - y1) < 0.1


def test_idempotent_second_call_rewrites_nothing_and_loads_no_generator(raw, gen, preprocessed, monkeypatch):
    expand(raw, 1.0, generator=gen)
    snap, times, pre_times = snapshot(raw), stamps(raw), stamps(preprocessed)

    def no_load(*a, **k):
        raise AssertionError("generator loaded although nothing had to be generated")

    monkeypatch.setattr(expand_identity, "create_generator", no_load)
    report = expand(raw, 1.0, generator=gen, batch_size=2)
    assert report["added"] == report["removed"] == 0
    assert snapshot(raw) == snap and stamps(raw) == times and stamps(preprocessed) == pre_times


def test_ratio_up_then_down_converges_to_a_fresh_run(raw, twin, gen):
    expand(raw, 0.5, generator=gen)
    first = snapshot(raw)
    assert expand(raw, 1.0, generator=gen)["added"] == 3
    kept = {k: v for k, v in snapshot(raw).items() if k in first and "synth_0000" in k}
    assert kept == {k: v for k, v in first.items() if "synth_0000" in k}  # earlier cases untouched
    report = expand(raw, 0.3, generator=gen)  # round(1.8) = 2: drop the highest indices
    assert (report["added"], report["removed"], report["total_synthetic"]) == (0, 4, 2)
    assert sorted(manifest(raw)["cases"]) == ["synth_00000", "synth_00001"]
    expand(twin, 0.3, generator=gen)
    assert snapshot(raw) == snapshot(twin)


def test_dry_run_writes_nothing(raw, gen, monkeypatch):
    before = snapshot(raw)
    monkeypatch.setattr(expand_identity, "create_generator", lambda *a, **k: pytest.fail("dry run loaded the generator"))
    report = expand(raw, 1.0, generator=gen, dry_run=True)
    assert (report["added"], report["removed"], report["dry_run"]) == (6, 0, True)
    assert snapshot(raw) == before
    monkeypatch.undo()
    expand(raw, 1.0, generator=gen)
    after = snapshot(raw)
    report = expand(raw, 0.5, generator=gen, dry_run=True)
    assert (report["added"], report["removed"], report["total_synthetic"]) == (0, 3, 3)
    assert snapshot(raw) == after


# ----------------------------------------------------------------------------- resume after a kill
class _Boom(RuntimeError):
    pass


def test_resume_after_failure_between_batches_equals_uninterrupted_run(raw, twin, gen, monkeypatch):
    real_before = real_files(snapshot(raw))
    calls = {"n": 0}
    original = PairGenerator.sample

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise _Boom("killed")
        return original(self, *a, **k)

    monkeypatch.setattr(PairGenerator, "sample", flaky)
    with pytest.raises(_Boom):
        expand(raw, 1.0, generator=gen, batch_size=2)
    m = manifest(raw)
    assert list(m["cases"]) == ["synth_00000", "synth_00001"] and "synth_00002" in m["pending"]
    with pytest.raises(SynthaugError, match="rerun `synthaug expand` or run `synthaug revert`"):
        RawDataset.open(raw)  # nnU-Net must not be fed a half-expanded folder
    monkeypatch.undo()
    assert expand(raw, 1.0, generator=gen, batch_size=5)["added"] == 4  # another batch size: same cases
    expand(twin, 1.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)
    assert real_files(snapshot(raw)) == real_before


def test_resume_after_failure_mid_case_and_revert_of_a_broken_run(raw, twin, gen, monkeypatch):
    before = snapshot(raw)
    original = expand_run.write_png

    def fail_on_fourth_write():
        writes = {"n": 0}

        def flaky_write(path, arr):
            writes["n"] += 1
            if writes["n"] == 4:  # case 0 done, case 1 has its image but no label yet
                raise _Boom("killed")
            original(path, arr)

        monkeypatch.setattr(expand_run, "write_png", flaky_write)

    fail_on_fourth_write()
    with pytest.raises(_Boom):
        expand(raw, 1.0, generator=gen)
    assert (raw / "imagesTr" / "synth_00001_0000.png").exists() and not (raw / "labelsTr" / "synth_00001.png").exists()
    (raw / "imagesTr" / ".synth_00002_0000.png.abc123.tmp").write_bytes(b"partial")  # what SIGKILL leaves
    monkeypatch.undo()
    assert revert(raw)["removed"] == 2
    assert snapshot(raw) == before

    fail_on_fourth_write()
    with pytest.raises(_Boom):
        expand(raw, 1.0, generator=gen)
    monkeypatch.undo()
    expand(raw, 1.0, generator=gen)
    expand(twin, 1.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


_KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import conftest
from synthaug.expand import expand
original = conftest.TinyConvGenerator._sample_batch
def slow(self, seeds, conditions):
    time.sleep(0.3)
    return original(self, seeds, conditions)
conftest.TinyConvGenerator._sample_batch = slow
expand({root!r}, 2.0, generator={gen!r}, batch_size=1)
"""


def test_sigkill_then_rerun_equals_uninterrupted_run(raw, twin, gen):
    """A real SIGKILL of a CLI-like process mid-run, then a rerun in this process."""
    real_before = real_files(snapshot(raw))
    script = _KILL_SCRIPT.format(tests=str(TESTS), root=str(raw), gen=gen)
    log = raw.parent / "expand.log"  # outside the dataset folder
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            path = raw / MANIFEST_NAME
            try:
                if len(json.loads(path.read_text(encoding="utf-8"))["cases"]) >= 3:
                    break
            except (FileNotFoundError, json.JSONDecodeError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, f"the expansion ended before it could be killed:\n{log.read_text(encoding='utf-8')[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert 3 <= len(manifest(raw)["cases"]) < 12
    expand(raw, 2.0, generator=gen)
    expand(twin, 2.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)
    assert real_files(snapshot(raw)) == real_before


# ----------------------------------------------------------------------------- shards
def test_two_shards_then_merge_equal_the_unsharded_run(raw, twin, gen):
    # 18 cases = blocks of 8, 8, 2 (MICRO_BATCH): shard 0/2 takes blocks 0 and 2, shard 1/2 block 1
    dataset_json = sha256_file(raw / "dataset.json")
    r0 = expand(raw, 3.0, generator=gen, shard=(0, 2))
    assert r0["added"] == 10 and r0["manifest"] == str(raw / part_name((0, 2)))
    assert not (raw / MANIFEST_NAME).exists() and sha256_file(raw / "dataset.json") == dataset_json
    cases = sorted(json.loads((raw / part_name((0, 2))).read_text(encoding="utf-8"))["cases"])
    assert cases == [f"synth_{k:05d}" for k in [*range(8), 16, 17]]
    from click.testing import CliRunner

    from synthaug.cli import main

    result = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "3", "--generator", gen, "--shard", "1/2",
                                       "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["added"] == 8, result.output
    assert expand(raw, 3.0, generator=gen, shard=(1, 2))["added"] == 0  # a shard is idempotent too
    report = expand(raw, 3.0, generator=gen)
    assert (report["added"], report["merged"]) == (0, 18)
    assert not list(raw.glob("synthaug_manifest.shard-*"))
    expand(twin, 3.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


def test_merge_regenerates_a_missing_shard_and_rejects_tampered_files(raw, twin, gen):
    expand(raw, 3.0, generator=gen, shard=(0, 3))  # block 0: cases 0-7
    expand(raw, 3.0, generator=gen, shard=(2, 3))  # block 2: cases 16, 17
    write_png(raw / "labelsTr" / "synth_00002.png", np.ones((32, 32), np.uint8))  # no longer what was recorded
    report = expand(raw, 3.0, generator=gen)  # shard 1/3 (block 1) never ran
    assert (report["added"], report["merged"]) == (9, 9)  # cases 8-15, plus the tampered 2
    expand(twin, 3.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


def test_shard_starting_while_another_shard_writes_reads_the_folder_again(raw, twin, gen, monkeypatch):
    expand(twin, 1.0, generator=gen, shard=(0, 2))  # what shard 0 has written when shard 1 lists the folder
    original = RawDataset.open.__func__

    def open_racing(cls, root, **kwargs):
        if not list(raw.glob("synthaug_manifest*")):  # shard 0 lands between manifest check and listing
            for f in twin.rglob("*"):
                if f.is_file() and ("synth" in f.name):
                    shutil.copy2(f, raw / f.relative_to(twin))
        return original(cls, root, **kwargs)

    monkeypatch.setattr(RawDataset, "open", classmethod(open_racing))
    expand(raw, 1.0, generator=gen, shard=(1, 2))
    monkeypatch.undo()
    assert json.loads((raw / part_name((1, 2))).read_text(encoding="utf-8"))["prefix"] == "synth_"  # not fooled into synth1_
    expand(raw, 1.0, generator=gen)
    expand(twin, 1.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


# ----------------------------------------------------------------------------- splits
def _check_splits(splits, real, synth):
    assert len(splits) == 5
    vals = [c for s in splits for c in s["val"]]
    assert sorted(vals) == sorted(real)  # every real case validates exactly once
    for s in splits:
        assert not set(s["val"]) & set(synth)
        assert set(synth) <= set(s["train"])
        assert sorted(s["train"] + s["val"]) == sorted(real + synth)


def test_expand_writes_splits_and_revert_restores_them(raw, gen, preprocessed):
    before = snapshot(raw)
    real = RawDataset.open(raw).case_ids()
    own = b'[{"train": ["case_000"], "val": ["case_001"]}]'  # a user's split: must come back exactly
    (preprocessed / "splits_final.json").write_bytes(own)
    report = expand(raw, 1.0, generator=gen)
    assert report["splits"] == str(preprocessed / "splits_final.json")
    splits = json.loads((preprocessed / "splits_final.json").read_text(encoding="utf-8"))
    _check_splits(splits, real, [f"synth_{k:05d}" for k in range(6)])
    nnunet = generate_crossval_split(sorted(real), seed=12345, n_splits=5)  # nnU-Net's default folds
    assert [s["val"] for s in splits] == [list(s["val"]) for s in nnunet]
    expand(raw, 0.5, generator=gen)
    _check_splits(json.loads((preprocessed / "splits_final.json").read_text(encoding="utf-8")), real, [f"synth_{k:05d}" for k in range(3)])
    revert(raw)
    assert (preprocessed / "splits_final.json").read_bytes() == own
    assert snapshot(raw) == before


def test_revert_removes_splits_that_did_not_exist(raw, gen, preprocessed):
    expand(raw, 1.0, generator=gen)
    assert (preprocessed / "splits_final.json").is_file()
    assert revert(raw)["splits_restored"] == [str(preprocessed / "splits_final.json")]
    assert not (preprocessed / "splits_final.json").exists()


def test_write_splits_command(raw, gen, tmp_path):
    from click.testing import CliRunner

    from synthaug.cli import main

    expand(raw, 1.0, generator=gen)
    out = tmp_path / "splits.json"
    result = CliRunner().invoke(main, ["splits", str(raw), "--out", str(out), "--folds", "3"])
    assert result.exit_code == 0, result.output
    splits = json.loads(out.read_text(encoding="utf-8"))
    assert len(splits) == 3 and all(set(f"synth_{k:05d}" for k in range(6)) <= set(s["train"]) for s in splits)
    assert write_splits(raw, out=out, folds=3) == out


# ----------------------------------------------------------------------------- names, identity
def test_prefix_avoids_real_case_names(tmp_path, gen):
    raw = make_raw(tmp_path, case_prefix="synth_")
    before = snapshot(raw)
    expand(raw, 0.5, generator=gen)
    assert manifest(raw)["prefix"] == "synth1_"
    assert (raw / "imagesTr" / "synth1_00000_0000.png").is_file()
    assert expand(raw, 0.5, generator=gen)["added"] == 0
    revert(raw)
    assert snapshot(raw) == before


def test_other_generator_seed_or_steps_is_refused(raw, gen, tmp_path):
    expand(raw, 0.5, generator=gen)
    tiny = type(create_generator(gen))  # conftest's test generator, whichever conftest module is imported
    other = tiny(tiny.build(seed=1)).save_pretrained(tmp_path / "other")
    for kwargs in ({"generator": str(other)}, {"generator": gen, "seed": 1}, {"generator": gen, "steps": 8}):
        with pytest.raises(SynthaugError, match="revert"):
            expand(raw, 0.5, **kwargs)
    same = shutil.copytree(gen, tmp_path / "copy")  # same checkpoint, other path: fine
    assert expand(raw, 0.5, generator=str(same))["added"] == 0


def test_unwritable_folder_fails_before_writing(raw, gen, monkeypatch):
    before = snapshot(raw)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: (False if Path(p) == raw / "labelsTr" and mode & os.W_OK
                                                            else real_access(p, mode, **k)))
    with pytest.raises(SynthaugError, match="not writable; nothing was changed"):
        expand(raw, 1.0, generator=gen)
    assert snapshot(raw) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_folder_fails_before_writing(raw, gen):
    before = snapshot(raw)
    for d in (raw, raw / "imagesTr", raw / "labelsTr"):
        d.chmod(0o555)
    try:
        with pytest.raises(SynthaugError, match="not writable"):
            expand(raw, 1.0, generator=gen)
    finally:
        for d in (raw, raw / "imagesTr", raw / "labelsTr"):
            d.chmod(0o755)
    assert snapshot(raw) == before


# ----------------------------------------------------------------------------- conditions
def test_condition_sampler_follows_the_real_data(raw):
    ds = RawDataset.open(raw)
    sampler = ConditionSampler.from_raw(ds, ds.case_ids())
    assert sampler.p_malignant == pytest.approx(2 / 6)
    draws = [sampler.draw(s) for s in range(600)]
    assert draws[:50] == [sampler.draw(s) for s in range(50)]  # a pure function of the seed
    share = np.mean([c.label == "malignant" for c, _ in draws])
    assert 0.25 < share < 0.42
    assert {size for _, size in draws} == {(32, 32), (24, 32)}
    malignant_boxes = set(sampler.boxes["malignant"])
    assert len(malignant_boxes) == 2 and all(c.box in malignant_boxes for c, _ in draws if c.label == "malignant")
    # odd cases have no metadata box: theirs come from the label files (case_001 is malignant)
    ys, xs = np.nonzero(read_mask(ds.label_path("case_001"), threshold=0))
    box = (xs.min() / 32, ys.min() / 24, (xs.max() + 1) / 32, (ys.max() + 1) / 24)
    assert any(b == pytest.approx(box, abs=1e-6) for b in malignant_boxes)


def test_condition_sampler_without_metadata_draws_no_label(tmp_path):
    ds = RawDataset.open(make_raw(tmp_path, metadata=False))
    sampler = ConditionSampler.from_raw(ds, ds.case_ids())
    cond, size = sampler.draw(7)
    assert cond.label is None and cond.box is not None and size in {(32, 32), (24, 32)}
    assert restrict(Condition("benign", (0.1, 0.1, 0.5, 0.5)), {"box"}) == Condition(None, (0.1, 0.1, 0.5, 0.5))


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope="session")
def busi128(busi_root, tmp_path_factory) -> Path:
    from synthaug.io.public_sets import convert_busi

    return convert_busi(busi_root, tmp_path_factory.mktemp("busi_raw"), dataset_id=991, size=128)


@pytest.mark.realdata
def test_busi_expand_and_revert(busi128, tiny_generator_dir, tmp_path, monkeypatch):
    raw = Path(shutil.copytree(busi128, tmp_path / busi128.name))
    pre = tmp_path / "pre" / raw.name
    pre.mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(pre.parent))
    before = snapshot(raw)
    real = RawDataset.open(raw).case_ids()
    assert len(real) == 518
    report = expand(raw, 0.25, generator=str(tiny_generator_dir), batch_size=32)
    assert (report["added"], report["total_synthetic"], report["real_cases"]) == (130, 130, 518)
    ds = RawDataset.open(raw)
    assert ds.dataset_json["numTraining"] == 648
    synth = [f"synth_{k:05d}" for k in range(130)]
    assert all(ds.case_sizes()[s] == (128, 128) for s in synth)
    labels = [e["conditions"]["label"] for e in manifest(raw)["cases"].values()]
    assert {"benign", "malignant"} == set(labels)
    _check_splits(json.loads((pre / "splits_final.json").read_text(encoding="utf-8")), real, synth)
    assert real_files(snapshot(raw)) == real_files(before)
    revert(raw)
    assert snapshot(raw) == before
    assert not (pre / "splits_final.json").exists()


def test_revert_preprocessed_removes_that_folder_only(raw, gen, preprocessed, tmp_path):
    """revert --preprocessed: $nnUNet_preprocessed/Dataset990_Tiny goes (it held the synthetic cases and
    their splits); its siblings, the files beside it and the raw folder's real cases stay."""
    before = snapshot(raw)
    (preprocessed / "nnUNetPlans_2d").mkdir()
    (preprocessed / "nnUNetPlans_2d" / "synth_00000.npz").write_bytes(b"preprocessed synthetic case")
    sibling = preprocessed.parent / "Dataset991_Other"
    sibling.mkdir()
    (sibling / "splits_final.json").write_text("[]")
    (preprocessed.parent / "notes.txt").write_text("mine")
    expand(raw, ratio=0.5, generator=gen)
    assert (preprocessed / "splits_final.json").is_file()
    res = CliRunner().invoke(main, ["revert", str(raw), "--preprocessed"])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().endswith(f"; removed {preprocessed}")
    assert sorted(p.name for p in preprocessed.parent.iterdir()) == ["Dataset991_Other", "notes.txt"]
    assert (sibling / "splits_final.json").read_text() == "[]" and snapshot(raw) == before


def test_revert_preprocessed_without_the_variable_changes_nothing(raw, gen, monkeypatch):
    expand(raw, ratio=0.5, generator=gen)
    expanded = snapshot(raw)
    res = CliRunner().invoke(main, ["revert", str(raw), "--preprocessed"])
    assert res.exit_code == 2 and res.output.count("\n") == 1
    assert "nnUNet_preprocessed is not set" in res.output and snapshot(raw) == expanded


def test_expand_command_writes_a_preview_beside_the_folder(raw, gen):
    before = snapshot(raw)
    res = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.5", "--generator", gen])
    assert res.exit_code == 0, res.output
    preview = raw.parent / f"synthaug_preview_{raw.name}.png"
    assert res.stdout == f"3 synthetic case(s) added in {raw}: 6 real and 3 synthetic training cases\n"
    assert f"synthaug: preview of the added cases: {preview}" in res.stderr
    from PIL import Image

    with Image.open(preview) as im:
        assert im.size == (3 * 128, 128 + 14)  # the 3 added cases, one row, captions
    assert sorted(p.name for p in raw.parent.iterdir()) == [raw.name, preview.name]  # nothing else, no temporaries
    revert(raw)
    assert snapshot(raw) == before  # the preview lives outside the folder revert restores


def test_expand_no_preview_writes_none(raw, gen):
    res = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.5", "--generator", gen, "--no-preview",
                                    "--json"])
    assert res.exit_code == 0, res.output
    assert "preview" not in json.loads(res.stdout) and "preview" not in res.stderr
    assert [p.name for p in raw.parent.iterdir()] == [raw.name]


def test_expand_and_revert_say_what_they_did_in_one_line(raw, gen):
    before = snapshot(raw)
    dry = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.5", "--generator", gen, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout == (f"dry run, nothing written: would have 3 synthetic case(s) added in {raw}: "
                          f"6 real and 3 synthetic training cases\n") and snapshot(raw) == before
    expand(raw, ratio=1.0, generator=gen)
    res = CliRunner().invoke(main, ["revert", str(raw)])
    assert res.exit_code == 0, res.output
    assert res.stdout == f"removed 6 synthetic case(s) from {raw}; restored dataset.json; 6 real cases untouched\n"
    assert snapshot(raw) == before
