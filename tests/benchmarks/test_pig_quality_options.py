"""Generator options from the command line (pig_quality --variant "NAME:key=value,...", seg/cls
--sampler-option, gate_quality NAME=DIR@key=value) become create_generator kwargs."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import sampler_options  # noqa: E402


def test_variant_options_parse_to_typed_keyword_arguments():
    assert sampler_options("ablation=mask-only,guidance_scale=2.5,steps=3") == {
        "ablation": "mask-only", "guidance_scale": 2.5, "steps": 3}
    assert sampler_options("") == {}


def test_the_judges_are_trained_once_under_a_lock_and_loaded_after(tmp_path, capsys):
    """Two benchmarks sharing a work folder: one trains the judges (files written atomically), the other
    waits on the lock and loads the same weights; nobody trains them twice."""
    import threading

    import numpy as np
    import torch

    from benchmarks.pig_quality import real_models
    from synthaug.data.datasets import PairDataset, Record

    rng = np.random.default_rng(0)
    train = PairDataset([Record(rng.integers(0, 255, (32, 32), dtype=np.uint8), np.eye(32, dtype=bool),
                                ("benign", "malignant")[i % 2], f"c{i}") for i in range(4)])
    got = []
    threads = [threading.Thread(target=lambda: got.append(real_models(tmp_path, {"train": train}, 1, 1)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = capsys.readouterr().out
    assert out.count("segmenter: 1 epochs") == 1 and out.count("classifier: 1 epochs") == 1
    assert sorted(p.name for p in tmp_path.glob("*.pt*")) == ["real_classifier.pt", "real_segmenter.pt"]
    (a_seg, _), (b_seg, _) = got
    assert all(torch.equal(x, y) for x, y in zip(a_seg.state_dict().values(), b_seg.state_dict().values()))


def test_a_dice_only_benchmark_trains_no_classifier(tmp_path, capsys):
    import numpy as np

    from benchmarks.pig_quality import real_models
    from synthaug.data.datasets import PairDataset, Record

    rng = np.random.default_rng(0)
    train = PairDataset([Record(rng.integers(0, 255, (32, 32), dtype=np.uint8), np.eye(32, dtype=bool),
                                ("benign", "malignant")[i % 2], f"c{i}") for i in range(4)])
    seg, cls = real_models(tmp_path, {"train": train}, 1, None)
    assert seg is not None and cls is None and [p.name for p in tmp_path.glob("*.pt")] == ["real_segmenter.pt"]
    assert "classifier" not in capsys.readouterr().out
    seg2, cls2 = real_models(tmp_path, {"train": train}, 1, 1)  # a later benchmark that needs both
    assert cls2 is not None and (tmp_path / "real_classifier.pt").is_file()
