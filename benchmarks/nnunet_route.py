"""Both nnU-Net routes end to end on the whole converted BUSI train split (issue "Trainer integrations").

Runs nnU-Net's and synthaug's command-line tools as a user would, on the CPU,
with tiny iteration counts (the point is that every stage works at full data
size and keeps synthetic cases out of validation, not the Dice):

1. on the fly: ``synthaug convert busi`` -> ``nnUNetv2_plan_and_preprocess``
   -> ``nnUNetv2_train -tr nnUNetTrainerSynthAugTiny`` (the generator writes
   round(ratio x fold-train) cases into the fold folder when training starts);
2. expand: ``synthaug expand --ratio`` -> plan and preprocess again ->
   ``synthaug splits`` -> ``nnUNetv2_train -tr nnUNetTrainerTiny`` ->
   ``synthaug revert`` (checked byte for byte against the converted folder).

    python benchmarks/nnunet_route.py --generator pig --work runs/nnunet_route --name nnunet_route_busi128
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_results  # noqa: E402
from integrations.nnunet.commands import (file_hashes, nnunet_env, plan_and_preprocess, run, train,  # noqa: E402
                                          validated_cases, validation_dice)
from synthaug.paths import data_root  # noqa: E402

SYNTHAUG = [sys.executable, "-m", "synthaug.cli"]


class Stages:
    """Wall time of each named stage, printed as it ends."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn, *args, **kwargs):
        t0 = time.time()
        out = fn(*args, **kwargs)
        self.seconds[name] = round(time.time() - t0, 1)
        print(f"{name}: {self.seconds[name]:.0f} s", flush=True)
        return out


def cases(raw: Path) -> set[str]:
    """Training case identifiers of a raw folder (image file names without the channel suffix)."""
    return {p.name.rsplit("_0000", 1)[0] for p in (raw / "imagesTr").glob("*.png")}


def split_counts(fold: Path) -> tuple[int, int]:
    log = next(fold.glob("training_log_*.txt")).read_text(encoding="utf-8")
    n_train, n_val = re.search(r"This split has (\d+) training and (\d+) validation cases", log).groups()
    return int(n_train), int(n_val)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", default="pig", help="registered name or checkpoint folder")
    ap.add_argument("--ratio", type=float, default=0.25)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=5, help="training iterations (1 epoch) per route")
    ap.add_argument("--dataset-id", type=int, default=501)
    ap.add_argument("--work", type=Path, default=Path("runs/nnunet_route"))
    ap.add_argument("--name", default="nnunet_route")
    args = ap.parse_args(argv)

    shutil.rmtree(args.work, ignore_errors=True)
    env = nnunet_env(args.work, SYNTHAUG_NNUNET_EPOCHS=1, SYNTHAUG_NNUNET_ITERS=args.iters)
    did, t = args.dataset_id, Stages()
    raw = Path(t("convert", run, SYNTHAUG + ["convert", "busi", data_root() / "BUSI", env["nnUNet_raw"],
                                             "--dataset-id", did, "--size", args.size], env).strip().splitlines()[-1])
    converted = file_hashes(raw)
    real_cases = cases(raw)
    n_real = len(real_cases)
    t("plan_and_preprocess (real)", plan_and_preprocess, env, did)

    fly_env = {**env, "SYNTHAUG_SOURCE": args.generator, "SYNTHAUG_RATIO": str(args.ratio)}
    fly = t("train on the fly (nnUNetTrainerSynthAugTiny)", train, fly_env, did, "nnUNetTrainerSynthAugTiny")
    keys = json.loads((fly / "synthaug_train" / "loader_keys.json").read_text(encoding="utf-8"))
    splits = json.loads((Path(env["nnUNet_preprocessed"]) / raw.name / "splits_final.json").read_text(encoding="utf-8"))
    fly_synth = [k for k in keys["train"] if Path(k).is_absolute()]
    on_the_fly = {"fold0_real_train": len(keys["train"]) - len(fly_synth), "synthetic_train": len(fly_synth),
                  "val": len(keys["val"]), "val_is_nnunet_split": sorted(keys["val"]) == sorted(splits[0]["val"]),
                  "synthetic_in_validation": len(validated_cases(fly) - set(splits[0]["val"])),
                  "validation_dice": validation_dice(fly)}

    report = json.loads(t("expand", run, SYNTHAUG + ["expand", raw, "--ratio", args.ratio, "--generator",
                                                     args.generator], env))
    t("plan_and_preprocess (expanded)", plan_and_preprocess, env, did)
    t("splits", run, SYNTHAUG + ["splits", raw], env)
    splits = json.loads((Path(env["nnUNet_preprocessed"]) / raw.name / "splits_final.json").read_text(encoding="utf-8"))
    synthetic = cases(raw) - real_cases
    exp = t("train expanded (nnUNetTrainerTiny)", train, env, did, "nnUNetTrainerTiny")
    n_train, n_val = split_counts(exp)
    expanded = {"added": report["added"], "synthetic_cases": len(synthetic), "fold0_train": n_train, "fold0_val": n_val,
                "synthetic_in_any_val_fold": sum(len(synthetic & set(s["val"])) for s in splits),
                "synthetic_in_every_train_fold": all(synthetic <= set(s["train"]) for s in splits),
                "validated_equals_split_val": validated_cases(exp) == set(splits[0]["val"]),
                "validation_dice": validation_dice(exp)}
    t("revert", run, SYNTHAUG + ["revert", raw], env)
    reverted = file_hashes(raw) == converted

    payload = {"generator": args.generator, "ratio": args.ratio, "size": args.size, "iterations": args.iters,
               "real_cases": n_real, "on_the_fly": on_the_fly, "expand": expanded, "revert_exact": reverted,
               "seconds": t.seconds, "total_minutes": round(sum(t.seconds.values()) / 60, 1)}
    print(json.dumps(payload, indent=1))
    md = [f"nnU-Net v2 on the converted BUSI train split ({n_real} real cases, {args.size} px, 2d, fold 0, CPU, "
          f"1 epoch x {args.iters} iterations), generator `{args.generator}`, ratio {args.ratio}.", "",
          "| route | fold-0 train (real + synthetic) | validation | synthetic in validation | final val. Dice |",
          "|---|---|---|---|---|",
          f"| on the fly (`nnUNetTrainerSynthAugTiny`) | {on_the_fly['fold0_real_train']} + "
          f"{on_the_fly['synthetic_train']} | {on_the_fly['val']} (nnU-Net's split: {on_the_fly['val_is_nnunet_split']}) "
          f"| {on_the_fly['synthetic_in_validation']} | {on_the_fly['validation_dice']:.3f} |",
          f"| expand (`synthaug expand` + `splits`, `nnUNetTrainerTiny`) | {n_train} (of which {len(synthetic)} "
          f"synthetic, in every fold's train: {expanded['synthetic_in_every_train_fold']}) | {n_val} | "
          f"{expanded['synthetic_in_any_val_fold']} (all 5 folds) | {expanded['validation_dice']:.3f} |", "",
          f"`synthaug revert` restored the converted folder byte for byte: **{reverted}**.", "",
          "| stage | seconds |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in t.seconds.items()] + [
          "", f"Total {payload['total_minutes']} min. The Dice after {args.iters} iterations only shows that the "
              "trained network predicts; it is not a result."]
    write_results(args.name, payload, "\n".join(md))


if __name__ == "__main__":
    main()
