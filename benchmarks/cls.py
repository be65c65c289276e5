"""Synthetic-ratio benchmark for benign vs malignant classification with timm models.

Same design, conditions, bank, resumable runs and report as ``seg.py`` (whose
driver this reuses): only the task differs. Models train from scratch on
1-channel images; AUC and F1 (threshold 0.5, malignant positive) on the
validation part and the internal test. STU has no tumour types, so there is
no external test here.

A synthetic image needs a tumour type to be a training example, so the bank
is generated class-conditionally at the real class shares: only generators
whose ``.conditions`` include "label" are accepted (never pseudo-labels).

    python benchmarks/cls.py --generator checkpoints/pig-busi-128 --profile quick
    nice -n 19 python benchmarks/cls.py --generator checkpoints/pig-busi-128 --profile cpu --work runs/bench_work
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.seg import ALL_CONDITIONS, Task, main  # noqa: E402
from integrations.smp_timm import build_classifier, train_classifier  # noqa: E402
from integrations.smp_timm.classification import predict_scores  # noqa: E402
from synthaug.metrics import auc_f1  # noqa: E402


def classification_metrics(model, dataset, bf16: bool) -> dict:
    scores, labels = predict_scores(model, dataset, bf16=bf16)
    return {**auc_f1(labels, scores), "n": int(labels.size)}


CLASSIFICATION = Task(
    name="cls",
    title="Benign vs malignant classification",
    metrics=("auc", "f1"),
    metric_labels={"auc": "AUC", "f1": "F1"},
    build=build_classifier,
    train=train_classifier,
    evaluate=classification_metrics,
    needs_label=True,
    profiles={
        "quick": dict(models=["resnet18"], conditions=["0%", "50%"], seeds=[0], epochs=1, size=64, cases=24,
                      batch_size=8, lr=1e-3, steps=10, scheduler="dpm++", chunk=8),
        # lightest first: with model-major order their rows are complete first.
        "cpu": dict(models=["mobilenetv2_100", "efficientnet_b0", "resnet50", "densenet121"],
                    conditions=list(ALL_CONDITIONS), seeds=[0, 1, 2], epochs=None, train_steps=400, size=128,
                    cases=None, batch_size=16, lr=1e-3, steps=None, scheduler=None, chunk=32),
    },
)


if __name__ == "__main__":
    main(CLASSIFICATION)
