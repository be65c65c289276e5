"""The two tasks the engine measures: lesion segmentation (smp) and benign vs malignant classification (timm).

A ``Task`` says how to build, train and score a model; the benchmarks add their
profiles (``benchmarks/seg.py``, ``benchmarks/cls.py``) and ``synthaug trial``
uses ``SEGMENTATION`` as it is, so users and our numbers run the same code.
"""
from __future__ import annotations

from integrations.smp_timm import build_classifier, build_segmenter, train_classifier, train_segmenter
from integrations.smp_timm.classification import predict_scores
from integrations.smp_timm.segmentation import dice_per_case, encoder_of

from ..metrics import auc_f1
from .runs import Task


def segmentation_metrics(model, dataset, bf16: bool) -> dict:
    """Mean DSC and the per-case DSC the paired bootstrap resamples."""
    d = dice_per_case(model, dataset, bf16=bf16)
    return {"dsc": float(d.mean()), "dsc_case_std": float(d.std()), "n": int(d.size),
            "cases": {"ids": [r.case_id for r in dataset.records], "values": [round(float(x), 5) for x in d]}}


def classification_metrics(model, dataset, bf16: bool) -> dict:
    """AUC and F1 (malignant positive, threshold 0.5) and the per-case scores the paired bootstrap resamples."""
    scores, labels = predict_scores(model, dataset, bf16=bf16)
    return {**auc_f1(labels, scores), "n": int(labels.size),
            "cases": {"ids": [r.case_id for r in dataset.records], "values": [round(float(x), 6) for x in scores],
                      "labels": [int(x) for x in labels]}}


SEGMENTATION = Task(
    name="seg",
    title="Lesion segmentation",
    metrics=("dsc",),
    metric_labels={"dsc": "DSC"},
    build=build_segmenter,
    train=train_segmenter,
    evaluate=segmentation_metrics,
    profiles={},
    external=True,
    paired_metric="mean",
    describe_model=encoder_of,
)

CLASSIFICATION = Task(
    name="cls",
    title="Benign vs malignant classification",
    metrics=("auc", "f1"),
    metric_labels={"auc": "AUC", "f1": "F1"},
    build=build_classifier,
    train=train_classifier,
    evaluate=classification_metrics,
    profiles={},
    needs_label=True,
    paired_metric="auc",
)
