"""The benchmark's fairness check reads the training case ids a checkpoint records, against split.json."""
from __future__ import annotations

import json
import shutil

from benchmarks.bench.driver import busi_generator_record as generator_record, busi_train_ids
from synthaug.io.public_sets import busi_case_splits
from synthaug.paths import REPO_ROOT


def test_shipped_checkpoint_is_confirmed_train_only_and_a_test_case_breaks_it(busi_root, tmp_path):
    record = generator_record(str(REPO_ROOT / "checkpoints" / "bus-busi-128"))
    assert record["busi_train_only"] and record["training_cases"] == record["busi_train_cases"] == 518

    # Withheld test images still get their case ids, so a generator that saw one is caught.
    test_id = next(c for c, s in busi_case_splits(busi_root).items() if s == "test")
    assert test_id not in busi_train_ids()
    copy = shutil.copytree(REPO_ROOT / "checkpoints" / "bus-busi-128", tmp_path / "bus-leaky")
    info = json.loads((copy / "synthaug.json").read_text(encoding="utf-8"))
    info["training_data"]["case_ids"].append(test_id)
    (copy / "synthaug.json").write_text(json.dumps(info), encoding="utf-8")
    leaky = generator_record(str(copy))
    assert not leaky["busi_train_only"] and leaky["training_cases"] == 519


def test_the_trial_counts_seen_cases_on_the_test_part_and_the_external_test():
    """What ``decision_split`` reads: the shipped generator saw BUSI train cases and no STU-named case."""
    from synthaug.evaluation.banks import generator_record as record_of
    from synthaug.evaluation.trial_report import decision_split

    ids = sorted(busi_train_ids())[:5]
    record = record_of("bus", held_out=set(ids), external={"STU_0001", "STU_0002"})
    assert record["held_out_seen"] == 5 and record["external_seen"] == 0
    assert decision_split({"internal": record["held_out_seen"], "external": record["external_seen"]}) == "external"
    assert "external_seen" not in record_of("bus", held_out=set(ids))
