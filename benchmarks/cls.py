"""Benign vs malignant classification benchmark (timm), with the same driver as ``seg.py``.

Same conditions, bank, resumable runs and report; only the task differs. Models
train from scratch on 1-channel images; AUC and F1 (threshold 0.5, malignant
positive) on the validation part and the internal test. STU has no tumour types,
so there is no external test, and copy-paste composites (two lesions, no single
tumour type) are not used.

A synthetic image needs a tumour type to be a training example, so the bank
is generated class-conditionally at the real class shares: only generators
whose ``.conditions`` include "label" are accepted (never pseudo-labels).

    python benchmarks/cls.py --generator checkpoints/pig-busi-128 --profile quick
    OMP_NUM_THREADS=1 python benchmarks/cls.py --generator checkpoints/bus-busi-128 --profile converged \\
        --work /work/runs/bench_work
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataclasses import replace  # noqa: E402

from benchmarks.seg import ALL_CONDITIONS, main  # noqa: E402
from synthaug.evaluation.tasks import CLASSIFICATION as CLASSIFICATION_TASK  # noqa: E402
from synthaug.evaluation.tasks import classification_metrics  # noqa: E402,F401

CLASSIFICATION = replace(
    CLASSIFICATION_TASK,
    profiles={
        "quick": dict(models=["resnet18"], conditions=["0%", "50%"], seeds=[0], epochs=1, size=64, cases=24,
                      batch_size=8, lr=1e-3, steps=10, scheduler="dpm++", chunk=8),
        # lightest first: with model-major order their rows are complete first.
        "cpu": dict(models=["mobilenetv2_100", "efficientnet_b0", "resnet50", "densenet121"],
                    conditions=list(ALL_CONDITIONS), seeds=[0, 1, 2], epochs=None, train_steps=400, size=128,
                    cases=None, batch_size=16, lr=1e-3, steps=None, scheduler=None, chunk=32),
        # 40 epochs: real and ordinary flat over epochs 25-40 on seed 0 (benchmarks/README.md, measured 2026-12-01).
        "converged": dict(models=["mobilenetv2_100"], conditions=["real", "ordinary", "bus 25%", "bus 100%"],
                          seeds=[0, 1, 2], epochs=40, size=128, cases=None, batch_size=16, lr=1e-3, steps=None,
                          scheduler=None, chunk=32, select="best-val", patience=None),
    },
)


if __name__ == "__main__":
    main(CLASSIFICATION)
