"""Units of ``synthaug trial`` on constructed data: the held-out split (stratified, disjoint, deterministic, the
test part never in selection), the recommendation rule on constructed verdicts, and the budget sizing."""
from __future__ import annotations

import numpy as np
import pytest

from synthaug.data.datasets import PairDataset, Record
from synthaug.errors import SynthaugError
from synthaug.evaluation.budget import MIN_EPOCHS, fit_budget
from synthaug.evaluation.conditions import parse_conditions
from synthaug.evaluation.holdout import split_key, strata, trial_parts
from synthaug.evaluation.report import select_on_validation
from synthaug.evaluation.stats import GAIN, LOSS, NONE, paired_bootstrap
from synthaug.evaluation.trial import check_lesions
from synthaug.evaluation.trial_report import check_out, decision_split, generator_lines, recommend


def cases(n: int, malignant_every: int = 3, labels: bool = True) -> PairDataset:
    recs = []
    for i in range(n):
        mask = np.zeros((16, 16), bool)
        mask[2:3 + i % 10, 2:8] = True
        label = ("malignant" if i % malignant_every == 0 else "benign") if labels else None
        recs.append(Record(np.full((16, 16), i, np.uint8), mask, label, f"c{i:03d}"))
    return PairDataset(recs)


def ids(ds) -> set[str]:
    return {r.case_id for r in ds.records}


# ----------------------------------------------------------------------------- split
def test_split_is_disjoint_complete_stratified_and_deterministic():
    ds = cases(60)
    parts = trial_parts(ds)["sets"]
    train, val, test = (ids(parts[k]) for k in ("train", "val", "internal"))
    assert not (train & val or train & test or val & test) and train | val | test == ids(ds)
    assert len(test) == 12 and len(val) == 10  # 20%, then 20% of the rest
    share = np.mean(np.array(ds.labels) == 1)
    for part in parts.values():  # every part holds the malignant share of the folder, to a case
        assert abs(np.mean(np.array(part.labels) == 1) * len(part) - share * len(part)) <= 1
    again = trial_parts(cases(60))["sets"]
    assert split_key(again) == split_key(parts) and ids(again["internal"]) == test
    assert split_key(trial_parts(ds, seed=1)["sets"]) != split_key(parts)


def test_unlabelled_folders_are_stratified_by_lesion_size():
    ds = cases(30, labels=False)
    groups = strata(ds)
    assert set(groups) == {1, 2, 3}  # terciles of the lesion area
    area = [r.mask.mean() for r in ds.records]
    assert max(a for a, g in zip(area, groups) if g == 1) <= min(a for a, g in zip(area, groups) if g == 3)
    test = trial_parts(ds)["sets"]["internal"]
    assert sorted(strata(test)) == [1, 1, 2, 2, 3, 3]


def test_own_test_cases_are_the_test_part_and_validation_comes_from_the_rest():
    ds, own = cases(20), cases(5)
    parts = trial_parts(ds, test=own)["sets"]
    assert parts["internal"] is own and ids(parts["train"]) | ids(parts["val"]) == ids(ds)


@pytest.mark.parametrize("n, own", [(11, None), (8, 2)])
def test_too_few_cases_are_refused_with_what_is_needed(n, own):
    with pytest.raises(SynthaugError, match="too few for a trial: it needs at least"):
        trial_parts(cases(n), test=cases(own) if own else None)


def test_folder_without_lesions_and_output_inside_raw_are_refused(tmp_path):
    empty = PairDataset([Record(np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool), None, f"c{i}") for i in range(4)])
    with pytest.raises(SynthaugError, match="every lesion mask is empty"):
        check_lesions(empty, tmp_path)
    check_lesions(cases(3), tmp_path)
    with pytest.raises(SynthaugError, match="inside"):
        check_out(tmp_path, tmp_path / "trial")
    assert check_out(tmp_path / "raw", tmp_path / "raw_trial") == tmp_path / "raw_trial"


def test_selection_reads_validation_only():
    """A condition best on the test part but worse on validation is not picked: selection never sees test."""
    conds = parse_conditions("real,ordinary,copy-paste 100%,bus 25%,bus 100%")
    cell = lambda val, test: {"val": {"dsc": {"mean": val}}, "internal": {"dsc": {"mean": test}}}  # noqa: E731
    row = {"real": cell(0.7, 0.7), "ordinary": cell(0.72, 0.6), "copy-paste 100%": cell(0.71, 0.9),
           "bus 25%": cell(0.75, 0.5), "bus 100%": cell(0.74, 0.95)}
    from synthaug.evaluation.tasks import SEGMENTATION

    assert select_on_validation(SEGMENTATION, row, conds) == {"any": "bus 25%", "synthetic": "bus 25%",
                                                              "classical": "ordinary"}


# ----------------------------------------------------------------------------- verdicts and the recommendation
def test_verdicts_on_constructed_paired_scores():
    rng = np.random.default_rng(0)
    base = {s: rng.uniform(0.5, 0.8, 40) for s in range(3)}
    up = {s: v + 0.05 + rng.normal(0, 0.01, 40) for s, v in base.items()}
    noisy = {s: v + rng.normal(0, 0.1, 40) for s, v in base.items()}
    assert paired_bootstrap(up, base)["verdict"] == GAIN
    assert paired_bootstrap(base, up)["verdict"] == LOSS
    assert paired_bootstrap(noisy, base)["verdict"] == NONE


def summary_with(vs_real: str, vs_classical: str | None, pick: str = "bus 100%", classical_vs_real: str = NONE):
    comp = {pick: {"vs_real": {"verdict": vs_real}}, "ordinary": {"vs_real": {"verdict": classical_vs_real}}}
    if vs_classical:
        comp[pick]["vs_classical"] = {"verdict": vs_classical}
    return {"selection": {"m": {"synthetic": pick, "classical": "ordinary"}}, "comparisons": {"m": {"internal": comp}}}


CONDS = parse_conditions("real,ordinary,bus 25%,bus 100% + ordinary,bus 100%")


@pytest.mark.parametrize("vs_real, vs_classical, use", [
    (GAIN, GAIN, True), (GAIN, NONE, False), (GAIN, LOSS, False), (NONE, GAIN, False), (LOSS, NONE, False),
])
def test_synthetic_data_is_recommended_only_for_a_gain_over_real_and_over_classical(vs_real, vs_classical, use):
    rec = recommend(summary_with(vs_real, vs_classical), CONDS, "m")
    assert rec["use_synthetic"] is use and rec["condition"] == "bus 100%"
    assert rec["ratio"] == (1.0 if use else None)
    assert ("no gain" in rec["why"]) is (not use)


def test_without_a_gain_it_says_what_to_train_with_instead():
    assert rec_why(GAIN).endswith("train on `ordinary`")
    assert rec_why(NONE).endswith("train on `real`")


def test_pairs_level_with_ordinary_augmentation_are_not_recommended_and_it_says_why():
    """The scarcity matrix at 25% of BUSI: pairs beat `real` but add nothing over ordinary augmentation."""
    rec = recommend(summary_with(GAIN, NONE, pick="bus 100% + ordinary", classical_vs_real=GAIN), CONDS, "m")
    assert not rec["use_synthetic"] and rec["ratio"] is None
    assert "a gain over `real` but no detectable gain over `ordinary`" in rec["why"]
    assert rec["why"].endswith("train on `ordinary`")


def test_without_a_classical_condition_a_gain_over_real_is_enough():
    summary = summary_with(GAIN, None)
    summary["selection"]["m"]["classical"] = None
    rec = recommend(summary, parse_conditions("real,bus 100%"), "m")
    assert rec["use_synthetic"] and rec["ratio"] == 1.0 and rec["why"].startswith("`bus 100%` (picked on validation)")


def rec_why(classical_vs_real):
    return recommend(summary_with(NONE, NONE, classical_vs_real=classical_vs_real), CONDS, "m")["why"]


def test_the_picked_ratio_carries_its_augmentation():
    rec = recommend(summary_with(GAIN, GAIN, pick="bus 100% + ordinary"), CONDS, "m")
    assert rec["use_synthetic"] and rec["ratio"] == 1.0 and rec["ordinary"]


@pytest.mark.parametrize("seen, split", [
    ({"internal": 104, "external": 0}, "external"),      # the shipped generator on BUSI + STU: STU decides
    ({"internal": 104}, "internal"),                     # no external test: the test part, with a warning
    ({"internal": 104, "external": 3}, "internal"),      # the external test is not clean either
    ({"internal": 104, "external": None}, "internal"),   # cannot tell for the external test
    ({"internal": 0, "external": 0}, "internal"),        # a clean test part decides, as a user's own would
    ({"internal": None, "external": None}, "internal"),
])
def test_the_recommendation_is_read_on_a_test_the_generator_never_saw(seen, split):
    assert decision_split(seen) == split


def test_verdicts_on_the_clean_external_test_decide_over_flattered_test_part_ones():
    """The trial at 25% of BUSI: a gain over ordinary on the test part (the generator trained on it), level on STU."""
    summary = summary_with(GAIN, GAIN, pick="bus 100% + ordinary", classical_vs_real=GAIN)
    comp = summary["comparisons"]["m"]
    comp["external"] = {"bus 100% + ordinary": {"vs_real": {"verdict": GAIN}, "vs_classical": {"verdict": NONE}},
                        "ordinary": {"vs_real": {"verdict": GAIN}}}
    assert recommend(summary, CONDS, "m")["use_synthetic"]
    rec = recommend(summary, CONDS, "m", decision_split({"internal": 104, "external": 0}))
    assert not rec["use_synthetic"] and rec["split"] == "external"
    assert rec["why"].startswith("no gain: on the external test, `bus 100% + ordinary`")
    record = {"ref": "bus", "generator": "bus", "checkpoint_hash": "h", "card_data": None, "training_cases": 518,
              "held_out_seen": 104, "external_seen": 0}
    assert "read on the external test, which it never saw" in generator_lines(record, "external")[1]
    assert "add an external test" in generator_lines(dict(record, external_seen=None), "internal")[1]


# ----------------------------------------------------------------------------- budget
COST = {"step": 0.5, "val": 2.0, "n_val": 20}


def test_budget_keeps_epochs_first_then_drops_seeds_and_says_so():
    full = fit_budget(None, COST, [20, 20, 26, 41], [0, 1, 2], 30, 40)
    assert full["epochs"] == 30 and full["seeds"] == [0, 1, 2] and not full["cut"]
    tight = fit_budget(full["estimate"] / 4, COST, [20, 20, 26, 41], [0, 1, 2], 30, 40)
    assert tight["estimate"] <= full["estimate"] / 4 and tight["epochs"] >= MIN_EPOCHS
    assert len(tight["seeds"]) < 3 and any(c.startswith("seeds 3 ->") for c in tight["cut"])
    tiny = fit_budget(60, COST, [20, 20, 26, 41], [0, 1, 2], 30, 40)
    assert tiny["seeds"] == [0] and tiny["epochs"] >= 1 and any("smoke test" in c for c in tiny["cut"])


def test_the_default_model_is_the_pretrained_one_when_its_wheel_is_installed(monkeypatch):
    import synthaug.pretrained as pretrained
    from synthaug.evaluation.trial import default_model

    assert default_model() == "unet-lite0"  # the wheel is a dependency of synthaug
    monkeypatch.setattr(pretrained, "lite_installed", lambda variant=0: False)
    assert default_model() == "unet"


def test_the_default_trial_asks_whether_pairs_add_to_ordinary_augmentation():
    from synthaug.evaluation.trial import TrialRequest, trial_conditions

    conds = trial_conditions(TrialRequest(raw="r", generator="g"), {"generator": "bus"})
    names = [c.name for c in conds]
    assert names[:2] == ["real", "ordinary"] and "bus 100% + ordinary" in names
    assert next(c for c in conds if c.name == "bus 100% + ordinary").augment
