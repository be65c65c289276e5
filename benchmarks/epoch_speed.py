"""Seconds per epoch of a converged segmentation run, before and after the speed work (issue 31, item 1).

One process trains the same run (``real``, the resnet18 U-Net from scratch, seed 0, the
``converged`` settings: batch 16, 20 batches an epoch, validation after every epoch) for
``--epochs`` epochs per variant, variants interleaved so both see the same machine load:

- ``before``: the earlier loop (default contiguous memory layout);
- ``after``: channels-last weights and batches (``integrations.smp_timm._loop.fit``);

each in float32 and, where the CPU runs it natively, bf16. Beside them it measures the
matmul peak of one core (so the times can be read against the machine) and where an epoch's
time goes (training steps, validation). It also replays the committed converged runs'
validation curves with early stopping at several patiences: the epochs a patience would have
saved and whether it keeps the same best-validation epoch (the LR schedule does not depend on
the stop, so the curve up to the stop is the same run).

    OMP_NUM_THREADS=1 python benchmarks/epoch_speed.py --epochs 3
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench.driver import benchmark_splits  # noqa: E402
from benchmarks.common import RESULTS, write_results  # noqa: E402
from integrations.smp_timm import build_segmenter, train_segmenter  # noqa: E402
from integrations.smp_timm.segmentation import dice_per_case  # noqa: E402
from synthaug.precision import cpu_name, native_bf16  # noqa: E402

CONVERGED = ["seg_real_converged_fp32.json", "seg_bus-busi-128_converged.json", "seg_pig-busi-128_converged_fp32.json",
             "seg_pig-busi-128_gated_converged_fp32.json"]


def matmul_gflops(dtype: torch.dtype, n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e9


def time_epochs(data: dict, epochs: int, channels_last: bool, bf16: bool) -> dict:
    """Train ``epochs`` epochs with validation after each; seconds per epoch split into train and validation."""
    torch.manual_seed(0)
    model = build_segmenter("unet")
    marks, val_seconds = [time.perf_counter()], []

    def validate(epoch: int, loss: float) -> bool:
        t = time.perf_counter()
        dice_per_case(model, data["val"], bf16=bf16, channels_last=channels_last)
        val_seconds.append(time.perf_counter() - t)
        marks.append(time.perf_counter())
        return False

    train_segmenter(model, data["train"], epochs=epochs, batch_size=16, lr=1e-3, seed=0, bf16=bf16,
                    channels_last=channels_last, on_epoch_end=validate)
    per_epoch = np.diff(marks)[1:] if epochs > 1 else np.diff(marks)  # the first epoch also warms up oneDNN
    vals = np.array(val_seconds[1:] if epochs > 1 else val_seconds)
    return {"seconds_per_epoch": float(per_epoch.mean()), "validation_seconds": float(vals.mean()),
            "train_seconds": float((per_epoch - vals).mean()), "epochs_timed": int(per_epoch.size)}


def patience_replay(patiences=(8, 10, 15)) -> dict:
    out = {}
    for p in patiences:
        same, saved, total, loss = 0, 0, 0, []
        runs = [r for f in CONVERGED if (RESULTS / f).is_file()
                for r in json.loads((RESULTS / f).read_text(encoding="utf-8"))["runs"] if "curve" in r]
        for r in runs:
            c = [x["val"]["dsc"] for x in r["curve"]]
            best_all = int(np.argmax(c))
            best, stop = -1, len(c)
            for i, v in enumerate(c):
                if i == 0 or v > c[best]:
                    best = i
                if i - best >= p:
                    stop = i + 1
                    break
            same += best == best_all
            saved += len(c) - stop
            total += len(c)
            loss.append(c[best_all] - c[best])
        out[str(p)] = {"runs": len(runs), "same_best_epoch": same, "epochs_saved_share": saved / max(total, 1),
                       "max_validation_loss": float(max(loss or [0]))}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--name", default="seg_epoch_speed")
    args = ap.parse_args(argv)
    data = benchmark_splits(128, None, False)["sets"]
    precisions = [False] + ([True] if native_bf16() else [])
    rows = []
    for bf16 in precisions:
        for variant, cl in (("before", False), ("after", True)):
            row = {"variant": variant, "channels_last": cl, "bf16": bf16, **time_epochs(data, args.epochs, cl, bf16)}
            print(row, flush=True)
            rows.append(row)
    peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16) if native_bf16() else None}
    replay = patience_replay()
    cpu = cpu_name()
    md = ["| precision | variant | s / epoch | of which validation | train steps | speed-up |", "|---|---|---|---|---|---|"]
    for r in rows:
        base = next(x for x in rows if x["bf16"] == r["bf16"] and x["variant"] == "before")
        md.append(f"| {'bf16' if r['bf16'] else 'float32'} | {r['variant']} | {r['seconds_per_epoch']:.1f} | "
                  f"{r['validation_seconds']:.1f} | {r['train_seconds']:.1f} | "
                  f"{base['seconds_per_epoch'] / r['seconds_per_epoch']:.2f}x |")
    md += ["", f"Matmul peak of one core measured beside (1024^3): float32 {peak['fp32']:.0f} GFLOP/s"
           + (f", bf16 {peak['bf16']:.0f} GFLOP/s" if peak["bf16"] else ", no native bf16") + f". CPU: {cpu}.", "",
           "Early stopping replayed on the committed converged runs' validation curves (same run up to the stop):", "",
           "| patience | runs | same best epoch | epochs saved | largest validation DSC lost |", "|---|---|---|---|---|"]
    for p, x in replay.items():
        md.append(f"| {p} | {x['runs']} | {x['same_best_epoch']} | {x['epochs_saved_share']:.0%} | "
                  f"{x['max_validation_loss']:.3f} |")
    md += ["", f"`real`, resnet18 U-Net from scratch, seed 0, {len(data['train'])} train cases, batch 16, validation on "
           f"{len(data['val'])} cases after every epoch; {args.epochs} epochs per variant, the first not timed (warm-up); "
           "`OMP_NUM_THREADS=1`, beside other jobs (both variants under the same load, interleaved)."]
    write_results(args.name, {"cpu": cpu, "rows": rows, "matmul_gflops": peak, "patience_replay": replay},
                  "\n".join(md))


if __name__ == "__main__":
    main()
