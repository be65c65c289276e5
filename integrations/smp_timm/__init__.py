"""Segmentation (smp) and classification (timm) loops that take any synthaug Dataset, a SyntheticMix included."""
from .augment import ordinary_augmentation
from .classification import build_classifier, predict_scores, train_classifier
from .segmentation import build_segmenter, predict_masks, train_segmenter

__all__ = ["build_classifier", "build_segmenter", "ordinary_augmentation", "predict_masks", "predict_scores",
           "train_classifier", "train_segmenter"]
