"""The scarcity axis (issue 31): nested stratified real fractions, the step floor, schedule conditions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from synthaug.errors import SynthaugError
from synthaug.evaluation.conditions import TrainCondition
from synthaug.evaluation.splits import real_fraction_subset
from integrations.smp_timm._loop import epoch_sampling
from synthaug.data.datasets import PairDataset


def cases(n_benign, n_malignant):
    recs = [(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), "benign", f"b{i}") for i in range(n_benign)]
    recs += [(np.zeros((4, 4), np.uint8), np.zeros((4, 4), bool), "malignant", f"m{i}") for i in range(n_malignant)]
    return PairDataset(recs)


def ids(ds):
    return {r.case_id for r in ds.records}


def test_real_fractions_are_stratified_nested_and_fixed_per_seed():
    train = cases(200, 100)
    f10, f25, f100 = (real_fraction_subset(train, f, seed=2) for f in (0.1, 0.25, 1.0))
    assert len(f10) == 30 and sum(r.label == "malignant" for r in f10.records) == 10
    assert ids(f10) < ids(f25) < ids(f100) and f100 is train
    assert ids(real_fraction_subset(train, 0.1, seed=2)) == ids(f10)
    assert ids(real_fraction_subset(train, 0.1, seed=3)) != ids(f10)
    assert len(real_fraction_subset(cases(5, 1), 0.1, 0)) == 2  # at least one case of each type
    with pytest.raises(SynthaugError, match="real-fraction"):
        real_fraction_subset(train, 0.0, 0)


def test_short_epochs_are_stretched_to_the_step_floor():
    g = torch.Generator().manual_seed(0)
    kw = epoch_sampling(33, 16, 20, g)
    loader = torch.utils.data.DataLoader(list(range(33)), batch_size=16, drop_last=True, generator=g, **kw)
    assert len(loader) == 20 and sorted(set(torch.cat(list(loader)).tolist())) == list(range(33))
    assert epoch_sampling(331, 16, 20, g) == {"shuffle": True}  # a full-size epoch is left alone


@pytest.mark.parametrize("name, ratio, pool, schedule", [("bus 100%", 1.0, 1.0, "constant"),
                                                         ("bus 100% bank 1000%", 1.0, 10.0, "constant"),
                                                         ("bus 100% bank 400% pretrain", 1.0, 4.0, "pretrain"),
                                                         ("bus  25%  decay + ordinary", 0.25, 0.25, "decay")])
def test_schedule_conditions_parse(name, ratio, pool, schedule):
    c = TrainCondition.parse(name)
    assert (c.ratio, c.pool_ratio, c.schedule, c.synthetic) == (ratio, pool, schedule, True)
    assert TrainCondition.parse(c.name) == c


@pytest.mark.parametrize("name", ["bus 100% bank 50%", "copy-paste 100% pretrain", "bus 100% warmup"])
def test_bad_schedule_conditions_are_refused(name):
    with pytest.raises(SynthaugError):
        TrainCondition.parse(name)


def test_a_grown_bank_leaves_the_pairs_of_plain_conditions_unchanged(tmp_path):
    from synthaug.evaluation.banks import Bank, bank_subset
    from synthaug.data.mix import BankEntry

    entries = {"benign": [BankEntry(f"b{i}", tmp_path / "x.png", tmp_path / "x.png", "benign") for i in range(100)]}
    (tmp_path / "x.png").write_bytes(b"")
    small = Bank("k", {"benign": entries["benign"][:10]}, base={"benign": 10}, n_real=10)
    grown = Bank("k", entries, base={"benign": 10}, n_real=10)
    names = lambda b: [e.name for e in b.entries]  # noqa: E731
    assert names(bank_subset(small, 5, {"benign": 1.0}, 3)) == names(bank_subset(grown, 5, {"benign": 1.0}, 3))
    wide = bank_subset(grown, 5, {"benign": 1.0}, 3, pool_counts={"benign": 100})
    assert len(wide.entries) == 5 and any(int(n[1:]) >= 10 for n in names(wide))


def test_annotation_saving_interpolates_in_log_fraction():
    from benchmarks.scarcity import crossing, mean_ci

    fr = [0.1, 0.25, 1.0]
    assert crossing(fr, [0.5, 0.6, 0.7], 0.6) == pytest.approx(0.25)
    assert 0.25 < crossing(fr, [0.5, 0.6, 0.7], 0.65) < 1.0
    assert crossing(fr, [0.5, 0.6, 0.7], 0.75) is None and crossing(fr, [0.5, 0.6, 0.7], 0.4) == 0.1
    m, lo, hi = mean_ci([0.7, 0.72, 0.74])
    assert m == pytest.approx(0.72) and lo < m < hi


def test_the_schedule_is_picked_on_validation_only(tmp_path, monkeypatch):
    import json

    import benchmarks.scarcity_matrix as sm

    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "PICK", tmp_path / "pick.json")
    runs = []
    for seed in (0, 1):
        for i, c in enumerate(sm.CANDIDATES + ["bus 100%"]):
            # the validation winner is the second candidate; the first would win on the tests
            val, test = (0.8 if i == 1 else 0.7), (0.9 if i == 0 else 0.6)
            runs.append({"condition": c, "seed": seed, "metrics": {"val": {"dsc": val}, "internal": {"dsc": test},
                                                                   "external": {"dsc": test}}})
    (tmp_path / "seg_scarcity_f25.json").write_text(json.dumps({"runs": runs[:-1]}))
    assert sm.pick_schedule([0, 1]) is None  # one run missing: no pick yet
    (tmp_path / "seg_scarcity_f25.json").write_text(json.dumps({"runs": runs}))
    assert sm.pick_schedule([0, 1]) == sm.CANDIDATES[1]
    assert json.loads((tmp_path / "pick.json").read_text())["on"].startswith("mean validation")


def test_the_hard_mix_is_picked_on_validation_only(tmp_path, monkeypatch):
    import json

    import benchmarks.scarcity_matrix as sm

    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "HARD_PICK", tmp_path / "hard.json")
    names = list(sm.HARD_MIXES)
    for i, name in enumerate(names):  # the second mix wins on validation, the first on the tests
        runs = [{"condition": "bus 100%", "seed": s, "metrics": {"val": {"dsc": 0.8 if i == 1 else 0.7},
                                                               "external": {"dsc": 0.9 if i == 0 else 0.6}}}
                for s in ((0,) if i == 1 else (0, 1))]
        (tmp_path / f"seg_scarcity_{name}_f25.json").write_text(json.dumps({"runs": runs}))
    assert sm.pick_hard([0, 1]) is None  # the second mix lacks seed 1
    runs[0]["seed"] = 1
    (tmp_path / f"seg_scarcity_{names[1]}_f25.json").write_text(json.dumps({"runs": runs + [{**runs[0], "seed": 0}]}))
    assert sm.pick_hard([0, 1]) == names[1]
    assert json.loads((tmp_path / "hard.json").read_text())["mix"] == sm.HARD_MIXES[names[1]]


def test_another_generators_report_adds_only_its_synthetic_conditions():
    from benchmarks.scarcity import merge

    run = lambda c: {"condition": c, "model": "m", "seed": 0, "metrics": {}}  # noqa: E731
    comp = {"vs_real": {"diff": 0.01}}
    main = {"conditions": ["real", "bus 100%"], "runs": [run("real"), run("bus 100%")],
            "summary": {"comparisons": {"m": {"external": {"bus 100%": comp}}}}}
    other = {"conditions": ["real", "bus 100%"], "runs": [run("real"), run("bus 100%")],
             "summary": {"comparisons": {"m": {"external": {"bus 100%": {"vs_real": {"diff": 0.02}}}}}}}
    merged = merge(main, other, "desc")
    assert merged["conditions"] == ["real", "bus 100%", "bus 100% [desc]"]
    assert [r["condition"] for r in merged["runs"]] == ["real", "bus 100%", "bus 100% [desc]"]
    assert merged["summary"]["comparisons"]["m"]["external"]["bus 100% [desc]"]["vs_real"]["diff"] == 0.02
    assert main["conditions"] == ["real", "bus 100%"]  # the first report is left as it was


def test_the_matrix_time_counts_a_run_shared_by_two_reports_once():
    from benchmarks.scarcity import compute_time, cpus, merge

    def run(c, minutes, bf16=True):
        return {"condition": c, "model": "m", "seed": 0, "metrics": {}, "seconds": 60 * minutes,
                "settings": {"bf16": bf16}}

    main = {"conditions": ["real", "bus 100%"], "runs": [run("real", 10), run("bus 100%", 20)],
            "summary": {"comparisons": {}}}
    arm = {"conditions": ["real", "bus 100%"], "runs": [run("real", 10), run("bus 100%", 30)],
           "summary": {"comparisons": {}}}
    late = {**run("real", 60, False), "machine": "Intel(R) Xeon(R), native bf16, 1 torch thread(s)"}
    compute = compute_time({0.25: merge(main, arm, "desc"), 1.0: {"runs": [late]}}, "m")
    first, second = compute["rows"]
    assert (first["fraction"], first["runs"], first["minutes_mean"], first["hours"]) == ("25%", 3, 20.0, 1.0)
    assert first["minutes_std"] == pytest.approx(10.0) and first["precision"] == "bf16"
    assert (second["runs"], second["minutes_std"], second["precision"]) == (1, 0.0, "float32")
    assert (first["machines"], second["machines"]) == ([], ["Intel(R) Xeon(R)"])
    assert cpus(first).startswith("not recorded") and cpus(second) == "Intel(R) Xeon(R)"
    assert cpus({**second, "runs": 3}) == "Intel(R) Xeon(R) (1 runs; 2 not recorded)"
    assert (compute["runs"], compute["hours"]) == (4, 2.0)


@pytest.mark.parametrize("given, expected", [([], None), (["--subset-seed", "1"], 1), (["--subset-seed", "0"], 0)])
def test_a_fixed_subset_seed_is_part_of_the_run_settings_only_when_given(given, expected):
    from benchmarks import seg
    from benchmarks.bench.driver import make_plan, parse_args

    args = parse_args(seg.SEGMENTATION, ["--profile", "scarcity", "--real-fraction", "0.25"] + given)
    settings = make_plan(seg.SEGMENTATION, args)["settings"]
    assert settings.get("subset_seed") == expected and settings["real_fraction"] == 0.25


def test_the_own_data_subset_is_the_benchmarks_25_percent_draw(tmp_path, busi_root):
    import json

    from benchmarks.scarcity_own_data import export, subset_ids

    raw = export(tmp_path, subset_seed=0)
    meta = json.loads((raw / "case_metadata.json").read_text())["cases"]
    assert set(meta) == subset_ids(0) and len(meta) == 83
    assert subset_ids(1) != subset_ids(0)
    assert export(tmp_path, subset_seed=0) == raw  # written once, then reused


def test_the_scarce_trial_gets_the_matrix_draw_as_train_and_its_internal_test_as_test(tmp_path, busi_root):
    import json

    from benchmarks.bench.driver import benchmark_splits
    from benchmarks.trial_scarce import compare_md, subset_folder

    raw = subset_folder(tmp_path, 0.1, 0)
    meta = json.loads((raw / "case_metadata.json").read_text())["cases"]
    train = {c for c, m in meta.items() if m["split"] == "train"}
    sets = benchmark_splits(128, None, external=False)["sets"]
    assert train == ids(real_fraction_subset(sets["train"], 0.1, 0)) and len(train) == 33
    assert {c for c, m in meta.items() if m["split"] == "test"} == ids(sets["internal"])
    assert len(list((raw / "imagesTs").glob("*.png"))) == 104 and subset_folder(tmp_path, 0.1, 0) == raw
    table = compare_md({"real": {"val": 0.5, "external": 0.61}}, 0.1, 0)
    assert "| real | 0.500 | – | 0.610 |" in table and compare_md({}, 0.1, 0).startswith("The matrix has no run")


def test_a_schedule_picked_late_also_runs_on_the_seeds_already_done(tmp_path, monkeypatch):
    import json

    import benchmarks.scarcity_matrix as sm

    calls = []
    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "PICK", tmp_path / "pick.json")
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: None)
    sm.PICK.write_text(json.dumps({"pick": sm.CANDIDATES[2]}))  # picked after seeds 0 and 1
    sm.main(["--seeds", "0,1,2", "--work", str(tmp_path)])
    training = [a for a in calls if "--report-only" not in a]
    arg = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    assert all(sm.CANDIDATES[2] in arg(a, "--conditions") for a in training)
    for fraction in ("0.1", "1.0"):  # the pick's seeds 0 and 1 at every fraction, asked again with seed 2
        seeds = [arg(a, "--seeds") for a in training if arg(a, "--real-fraction") == fraction]
        assert seeds == ["0", "0,1", "0,1,2"]


def test_the_summary_reads_the_committed_reports_as_the_matrix_writes_them(tmp_path, monkeypatch):
    import json

    import benchmarks.scarcity as sc
    from benchmarks.common import RESULTS

    written = {}
    monkeypatch.setattr(sc, "RESULTS", tmp_path)
    monkeypatch.setattr(sc, "write_results", lambda name, payload, md, out_dir: written.update(payload=payload, md=md))
    reports = {f: RESULTS / f"seg_scarcity_f{round(f * 100)}.json" for f in (0.1, 0.25, 1.0)}
    assert all(isinstance(c, dict) for c in json.loads(reports[0.25].read_text())["conditions"])  # the real format
    sc.main(sum((["--report", f"{f}={p}"] for f, p in reports.items()), []) + ["--name", "summary"])
    assert written["payload"]["fractions"] == [0.1, 0.25, 1.0] and (tmp_path / "summary.png").stat().st_size > 0
    assert "| real |" in written["md"] and "| bus 100% |" in written["md"]
    paired = written["payload"]["paired_vs_classical"]["external"]["bus 100% + ordinary"]  # the figure's lower row
    committed = json.loads(reports[0.1].read_text())["summary"]["comparisons"]["unet-lite0"]["external"]
    assert paired[0]["diff"] == committed["bus 100% + ordinary"]["vs_classical"]["diff"]
    assert [p["fraction"] for p in paired] == [0.1, 0.25, 1.0] and paired[0]["lo"] <= paired[0]["diff"] <= paired[0]["hi"]
    merged = sc.merge(json.loads(reports[0.25].read_text()), json.loads(reports[0.25].read_text()), "again")
    assert "bus 100% [again]" in merged["conditions"] and "real [again]" not in merged["conditions"]


def test_the_pick_is_made_within_the_seed_that_finishes_the_candidates(tmp_path, monkeypatch):
    """seg.py rewrites a fraction's report with the conditions it was called with; the pick must still see
    every candidate, so seed 1's 10% and 100% steps already run it (a bug found in session 20)."""
    import json

    import benchmarks.scarcity_matrix as sm

    calls = []

    def fake_seg(_spec, argv):
        arg = lambda k: argv[argv.index(k) + 1]  # noqa: E731
        calls.append(argv)
        if arg("--real-fraction") == "0.25":  # the report holds exactly this call's conditions and seeds
            runs = [{"condition": c, "seed": int(s), "metrics": {"val": {"dsc": 0.8 if c == sm.CANDIDATES[3] else 0.7}}}
                    for c in arg("--conditions").split(",") for s in arg("--seeds").split(",")]
            (tmp_path / "seg_scarcity_f25.json").write_text(json.dumps({"runs": runs}))

    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "PICK", tmp_path / "pick.json")
    monkeypatch.setattr(sm.seg, "main", fake_seg)
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: None)
    sm.main(["--seeds", "0,1", "--work", str(tmp_path)])
    arg = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    seed1_10 = [a for a in calls if "--report-only" not in a and arg(a, "--real-fraction") == "0.1"
                and arg(a, "--seeds") == "0,1"]
    assert seed1_10 and sm.CANDIDATES[3] in arg(seed1_10[0], "--conditions").split(",")


def test_arms_only_trains_nothing_but_the_descriptor_generators_arms(tmp_path, monkeypatch):
    import benchmarks.scarcity_matrix as sm

    calls = []
    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "HARD_PICK", tmp_path / "hard.json")
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: calls.append(["summary"]))
    sm.main(["--seeds", "0", "--work", str(tmp_path), "--descriptor-generator", "ckpt/desc", "--arms-only"])
    assert calls and all(a[a.index("--generator") + 1] == "ckpt/desc" for a in calls)
    with pytest.raises(SystemExit, match="descriptor-generator"):
        sm.main(["--arms-only"])


def test_import_committed_copies_the_committed_runs_before_training_and_leaves_the_reports(tmp_path, monkeypatch):
    """A new machine: each committed report is imported (scratch results folder), then training starts."""
    import benchmarks.scarcity_matrix as sm

    calls = []
    for name in ("seg_scarcity_f25", "seg_scarcity_f100", "seg_scarcity_desc_f25"):  # no f10: nothing to import
        (tmp_path / f"{name}.json").write_text('{"runs": []}')
    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "PICK", tmp_path / "pick.json")
    monkeypatch.setattr(sm, "HARD_PICK", tmp_path / "hard.json")
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: None)
    monkeypatch.setattr(sm, "pending_runs", lambda _results: [])
    sm.main(["--seeds", "0", "--work", str(tmp_path / "w"), "--descriptor-generator", "ckpt/desc", "--arms-only",
             "--import-committed"])
    imports = [a for a in calls if "--import-runs" in a]
    assert [Path(a[a.index("--import-runs") + 1]).name for a in imports] == [
        "seg_scarcity_f25.json", "seg_scarcity_f100.json", "seg_scarcity_desc_f25.json"]
    assert all("--report-only" in a and a[a.index("--results-dir") + 1] != str(tmp_path) for a in imports)
    assert imports[2][imports[2].index("--generator") + 1] == "ckpt/desc"
    assert calls.index(imports[-1]) < min(i for i, a in enumerate(calls) if "--import-runs" not in a)

    calls.clear()  # kept runs of an unfinished seed (benchmarks/keep_runs.py): every plan imports them too
    monkeypatch.setattr(sm, "pending_runs", lambda _results: [tmp_path / "pending.json"])
    sm.main(["--seeds", "0", "--work", str(tmp_path / "w"), "--fractions", "0.1", "--conditions", "real",
             "--import-committed"])
    imports = [a for a in calls if "--import-runs" in a]
    sources = [[Path(a[i + 1]).name for i, x in enumerate(a) if x == "--import-runs"] for a in imports]
    assert sources == [["seg_scarcity_f25.json", "pending.json"], ["pending.json"],  # f10: no report, pending only
                       ["seg_scarcity_f100.json", "pending.json"]]


def test_the_figure_draws_complete_conditions_and_bands_only_from_three_seeds():
    from benchmarks.scarcity import drawn

    def pts(*seeds):
        return [{"fraction": f, "n_seeds": n, "mean": 0.5 if n else None, "lo": 0.4, "hi": 0.6}
                for f, n in zip((0.1, 0.25, 1.0), seeds)]

    out = drawn({"real": pts(3, 3, 3), "ordinary": pts(3, 2, 3), "bank 400%": pts(0, 2, 0)})
    assert out == {"real": True, "ordinary": False}


def test_import_committed_takes_a_hard_mix_arm_with_its_descriptor_request(tmp_path, monkeypatch):
    """A hard mix's bank key carries its descriptor request: the import must ask for the same bank."""
    import benchmarks.scarcity_matrix as sm

    calls = []
    (tmp_path / "seg_scarcity_hard-all_f25.json").write_text('{"runs": []}')
    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm, "HARD_PICK", tmp_path / "hard.json")
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    sm.import_committed(sm.argparse.Namespace(generator="g", descriptor_generator="ckpt/desc", seeds="0", arm=None,
                                              work=tmp_path / "w"))
    assert len(calls) == 1 and calls[0][calls[0].index("--name") + 1] == "seg_scarcity_hard-all_f25"
    assert f"descriptors={sm.HARD_MIXES['hard-all']}" in calls[0]


def test_own_data_fit_parts_are_stored_as_they_finish_and_restored_on_a_new_machine(tmp_path):
    """The own-data fit outlives its machine only through the committed store: finished parts (and the
    plan) go in, a part still training does not; a new work folder starts from them, an existing one is
    left alone."""
    import json

    import benchmarks.scarcity_own_data as own
    from synthaug.fit import PLAN_NAME, finished_parts

    out, store = tmp_path / "fit", tmp_path / "store"
    plan = {"parts": {"scmg": {"started": True, "steps": 10}, "vae": {"started": True, "steps": 10},
                      "ldm": {"started": False, "steps": 5}}}
    out.mkdir()
    (out / PLAN_NAME).write_text(json.dumps(plan))
    for part, steps in (("scmg", 10), ("vae", 4)):
        (out / part / "final").mkdir(parents=True)
        (out / part / "final" / "synthaug.json").write_text(json.dumps({"steps": steps}))
        (out / part / "final" / "README.md").write_text(f"# {part}\n")
    assert finished_parts(out) == ["scmg"]
    assert own.store_parts(out, store) == ["scmg"] and own.store_parts(out, store) == []  # once, until it changes
    assert not (store / "vae").exists() and json.loads((store / PLAN_NAME).read_text()) == plan
    (out / "vae" / "final" / "synthaug.json").write_text(json.dumps({"steps": 10}))
    assert own.store_parts(out, store) == ["vae"]

    assert own.restore_parts(store, out) == []  # a work folder with its own plan is not overwritten
    fresh = tmp_path / "new_machine"
    assert own.restore_parts(store, fresh) == ["scmg", "vae"]
    assert finished_parts(fresh) == ["scmg", "vae"]
    assert (fresh / "scmg" / "final" / "README.md").read_text() == "# scmg\n"
    assert not list(store.glob("**/.*partial")) and not list(fresh.glob("**/.*partial"))


def test_an_extra_checkpoint_arm_trains_its_bus_runs_at_25_and_100_percent_under_its_own_name(tmp_path, monkeypatch):
    import benchmarks.scarcity_matrix as sm

    calls = []
    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: None)
    sm.main(["--seeds", "0", "--work", str(tmp_path), "--arm", "edge=ckpt/edge", "--arms-only"])
    arg = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    training = [a for a in calls if "--report-only" not in a]
    assert [(arg(a, "--name"), arg(a, "--generator")) for a in training] == [
        ("seg_scarcity_edge_f25", "ckpt/edge"), ("seg_scarcity_edge_f100", "ckpt/edge")]
    assert all(arg(a, "--conditions") == "real,bus 100%" for a in training)
    for bad in ("edge", "desc=ckpt", "hard-all=ckpt", "a b=ckpt"):
        with pytest.raises(SystemExit, match="--arm"):
            sm.main(["--arm", bad, "--arms-only"])


def test_an_arm_can_run_the_headline_comparison_at_10_percent_in_a_separate_matrix(tmp_path, monkeypatch):
    """``--arm-fractions`` / ``--arm-conditions``: a candidate's ``bus 100% + ordinary`` beside the headline,
    its report in the separate matrix and in its summary; a bad setting stops before anything trains."""
    import benchmarks.scarcity_matrix as sm

    calls, summaries = [], []
    monkeypatch.setattr(sm, "RESULTS", tmp_path / "main")
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: summaries.append(argv))
    monkeypatch.setattr(sm, "check_precision", lambda reports, here: None)
    sep = tmp_path / "fp32"
    sep.mkdir()
    (sep / "seg_scarcity_g4_f10.json").write_text('{"runs": []}')  # as the arm's first report leaves it
    headline = "real,ordinary,bus 100% + ordinary"
    sm.main(["--seeds", "2", "--work", str(tmp_path / "w"), "--results-dir", str(sep), "--fractions", "0.1",
             "--conditions", headline, "--arm", "g4=ckpt/g4", "--arm-fractions", "0.1", "--arm-conditions", headline,
             "--arms-only"])
    arg = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    training = [a for a in calls if "--report-only" not in a]
    assert [(arg(a, "--name"), arg(a, "--generator"), arg(a, "--conditions")) for a in training] == [
        ("seg_scarcity_g4_f10", "ckpt/g4", headline)]
    assert all(arg(a, "--results-dir") == str(sep) for a in calls)
    calls.clear()
    sm.main(["--seeds", "2", "--work", str(tmp_path / "w"), "--results-dir", str(sep), "--fractions", "0.1",
             "--conditions", headline, "--arm", "g4=ckpt/g4", "--arm-fractions", "0.1", "--arm-conditions", headline,
             "--report-only"])
    assert f"0.1={sep / 'seg_scarcity_g4_f10.json'}@bus-g4" in summaries[-1]
    for bad in (["--arm-fractions", "0.5"], ["--arm-conditions", "bus 300%"]):
        calls.clear()
        with pytest.raises(SystemExit, match=bad[0]):
            sm.main(["--seeds", "2", "--work", str(tmp_path / "w"), "--arm", "g4=ckpt/g4", "--arms-only", *bad])
        assert not calls


def test_a_machine_of_another_precision_is_refused_before_anything_trains(tmp_path, monkeypatch):
    """Session 23: a CPU without native bf16 imported none of the committed bf16 runs and began the matrix
    again in float32; now it stops at once in one line."""
    import json

    import benchmarks.scarcity_matrix as sm

    calls = []
    (tmp_path / "seg_scarcity_f25.json").write_text(json.dumps({"runs": [{"settings": {"bf16": True}}]}))
    monkeypatch.setattr(sm, "RESULTS", tmp_path)
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: None)
    monkeypatch.setattr("synthaug.precision.native_bf16", lambda device="cpu": False)
    with pytest.raises(SystemExit, match="bf16=True.*float32"):
        sm.main(["--seeds", "0", "--work", str(tmp_path)])
    assert calls == []
    sm.check_precision([tmp_path / "seg_scarcity_f25.json"], True)  # the same precision passes
    sm.check_precision([tmp_path / "missing.json"], False)  # nothing committed: nothing to keep apart


def test_a_separate_matrix_runs_its_fractions_and_conditions_into_its_own_folder(tmp_path, monkeypatch):
    """Another precision continues nothing committed: --results-dir starts a separate matrix, here the 10%
    headline comparison only, with the committed schedule pick reused."""
    import json

    import benchmarks.scarcity_matrix as sm

    committed, separate, calls, summaries = tmp_path / "committed", tmp_path / "float32", [], []
    committed.mkdir()
    (committed / "seg_scarcity_f25.json").write_text(json.dumps({"runs": [{"settings": {"bf16": True}}]}))
    (committed / "pick.json").write_text(json.dumps({"pick": sm.CANDIDATES[3]}))
    monkeypatch.setattr(sm, "RESULTS", committed)
    monkeypatch.setattr(sm, "PICK", committed / "pick.json")
    monkeypatch.setattr(sm.seg, "main", lambda _spec, argv: calls.append(argv))
    monkeypatch.setattr(sm.scarcity, "main", lambda argv: summaries.append(argv))
    monkeypatch.setattr("synthaug.precision.native_bf16", lambda device="cpu": False)
    sm.main(["--seeds", "2", "--work", str(tmp_path / "w"), "--results-dir", str(separate), "--fractions", "0.1",
             "--conditions", "real,ordinary,bus 100% + ordinary,pick"])
    arg = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    assert {arg(a, "--real-fraction") for a in calls} == {"0.1"}
    assert {arg(a, "--results-dir") for a in calls} == {str(separate)}
    assert {arg(a, "--conditions") for a in calls} == {f"real,ordinary,bus 100% + ordinary,{sm.CANDIDATES[3]}"}
    assert arg(summaries[0], "--results-dir") == str(separate) and "--report" in summaries[0]
    for bad in (["--conditions", "real,magic"], ["--fractions", "0.5"]):
        with pytest.raises(SystemExit, match=bad[0]):
            sm.main(["--seeds", "2", "--work", str(tmp_path / "w"), "--results-dir", str(separate), *bad])


def test_summary_keeps_the_fractions_a_subset_did_not_run(tmp_path):
    """``--fractions 0.1,0.25 --report-only`` rewrites those reports; the summary keeps the 100% one on disk."""
    import benchmarks.scarcity_matrix as sm
    (tmp_path / "seg_scarcity_f100.json").write_text("{}")
    assert sm.fraction_reports(tmp_path, [0.1, 0.25]) == [f"{f}={tmp_path / n}" for f, n in (
        (0.1, "seg_scarcity_f10.json"), (0.25, "seg_scarcity_f25.json"), (1.0, "seg_scarcity_f100.json"))]
    assert sm.fraction_reports(tmp_path / "none", [0.1]) == [f"0.1={tmp_path / 'none' / 'seg_scarcity_f10.json'}"]


def test_summary_keeps_every_arm_report_on_disk(tmp_path):
    """The main matrix rewrites the summary after each seed: arms other invocations ran stay in it, under
    their labels; the own-data control, the hard-mix candidates, comparisons and curves do not."""
    import benchmarks.scarcity_matrix as sm
    for stem in ["seg_scarcity_f10", "seg_scarcity_lw_f10", "seg_scarcity_ramp-g4_f100", "seg_scarcity_desc_f25",
                 "seg_scarcity_own_f25", "seg_scarcity_hard-half_f25", "seg_scarcity_lw_vs_bus_f10",
                 "seg_scarcity_curve_f0.1", "seg_scarcity_shipped_fixed_f25"]:
        (tmp_path / f"{stem}.json").write_text("{}")
    found = sm.arm_reports(tmp_path)
    assert found == [f"0.25={tmp_path / 'seg_scarcity_desc_f25.json'}@bus-desc",
                     f"0.1={tmp_path / 'seg_scarcity_lw_f10.json'}@bus-desc",
                     f"1.0={tmp_path / 'seg_scarcity_ramp-g4_f100.json'}@bus-ramp-g4"]


def test_own_data_runs_write_both_reports_after_every_seed_and_import_the_committed_runs_first(tmp_path, monkeypatch):
    """A session may end mid-way on a machine the next one does not have: each seed rewrites both reports
    with every seed done so far, and ``--import-committed`` copies the committed runs (reports and pending
    files) into the work folder before anything trains, its reports into a scratch folder."""
    import benchmarks.scarcity_own_data as own

    calls = []
    monkeypatch.setattr(own, "RESULTS", tmp_path)
    (tmp_path / "seg_scarcity_own_f25.json").write_text('{"runs": []}')  # the shipped one's report is not there
    monkeypatch.setattr(own, "pending_runs", lambda _results: [tmp_path / "pending.json"])
    monkeypatch.setattr(own.seg, "main", lambda _spec, argv: calls.append(argv))
    args = own.argparse.Namespace(seeds="0,1,2", work=tmp_path / "w", subset_seed=0, shipped="ckpt/shipped",
                                  import_committed=True)
    own.runs(args, tmp_path / "fit" / "checkpoint")
    arg = lambda a, k: a[a.index(k) + 1]  # noqa: E731
    imports, training = calls[:2], calls[2:]
    assert [[a[i + 1] for i, x in enumerate(a) if x == "--import-runs"] for a in imports] == [
        [str(tmp_path / "seg_scarcity_own_f25.json"), str(tmp_path / "pending.json")], [str(tmp_path / "pending.json")]]
    assert all("--report-only" in a and arg(a, "--results-dir") != str(tmp_path) for a in imports)
    assert not any("--import-runs" in a or "--report-only" in a for a in training)
    assert [(arg(a, "--name"), arg(a, "--seeds")) for a in training] == [
        (name, seeds) for seeds in ("0", "0,1", "0,1,2") for name in own.REPORTS]
    assert {arg(a, "--generator") for a in training[::2]} == {str(tmp_path / "fit" / "checkpoint")}
    assert {arg(a, "--generator") for a in training[1::2]} == {"ckpt/shipped"}
