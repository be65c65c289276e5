"""Issue 18: the OpenVINO engine against torch, its fallback, one engine per expanded folder, threads recorded."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.expand import expand
from synthaug.io import manifest as mf
from synthaug.io.manifest import MANIFEST_NAME
from synthaug.pipelines import engines
from synthaug.pipelines.base import Condition
from synthaug.pipelines.registry import create_generator, default_checkpoint
from test_expand import make_raw

STEPS = 3  # few sampler steps: the engines' rounding differences are per step, the plumbing is the same
TORCH = engines.torch_identity("cpu")  # "torch" (bf16) or "torch-fp32" on a CPU without native bf16


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory):
    """A private user cache: the OpenVINO export is made (and checked) here, once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("engine_cache")
        mp.setenv("SYNTHAUG_CACHE", str(path))
        yield path


def _stamps(folder):
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_openvino_matches_torch_within_tolerance_and_caches_outside_the_checkpoint(engine_cache):
    ckpt = default_checkpoint("bus")
    before = _stamps(ckpt)
    conds = [Condition("benign"), Condition("malignant"), Condition("malignant", (0.2, 0.3, 0.6, 0.7))]
    pairs = {}
    for engine in ("torch", "openvino"):
        gen = create_generator("bus", engine=engine, steps=STEPS)
        pairs[engine] = gen.sample(seeds=[3, 4, 5], conditions=conds, batch_size=3)
    assert gen.engine == f"openvino-{engines.openvino_version()}" + ("" if TORCH == "torch" else "-fp32")
    for a, b in zip(pairs["torch"], pairs["openvino"]):
        np.testing.assert_array_equal(a.mask, b.mask)  # SCMG runs in torch for both
        diff = np.abs(a.image.astype(int) - b.image.astype(int))
        assert diff.max() <= engines.TOLERANCE_GREY and diff.mean() <= engines.TOLERANCE_MEAN_GREY
        assert a.image.std() > 5  # an image, not a blank that would trivially match
    assert len(list(engine_cache.glob("engines/*/openvino-*/step.xml"))) == 1
    assert len(list(engine_cache.glob("engines/*/openvino-*/decode.xml"))) == 1
    assert _stamps(ckpt) == before  # nothing written into the checkpoint folder (its hash keys banks)


def test_missing_openvino_warns_once_and_falls_back(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    monkeypatch.setattr(engines, "_warned", set())
    assert engines.resolve_engine("openvino", "cpu", ("torch", "openvino")) == TORCH
    assert engines.resolve_engine("openvino", "cpu", ("torch", "openvino")) == TORCH
    assert engines.resolve_engine("auto", "cpu", ("torch", "openvino")) == TORCH
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "openvino package is not installed" in err and "using the torch engine" in err


def test_engine_choice_is_checked():
    with pytest.raises(SynthaugError, match="unknown engine 'tensorrt'"):
        engines.check_engine("tensorrt")
    with pytest.raises(SynthaugError, match="not available for this generator"):
        engines.resolve_engine("openvino", "cpu", ("torch",))
    assert engines.resolve_engine("auto", "cuda", ("torch", "openvino")) == engines.torch_identity("cuda")


def test_expand_keeps_one_engine_per_folder(tmp_path, engine_cache):
    raw = make_raw(tmp_path, n=6)
    expand(raw, ratio=0.5, generator="bus", steps=STEPS, engine="torch", threads=1)
    m = json.loads((raw / MANIFEST_NAME).read_text())
    assert m["generator"]["engine"] == TORCH and {e["threads"] for e in m["cases"].values()} == {1}
    if TORCH == "torch":  # a manifest from before engines were recorded counts as torch (bf16)
        del m["generator"]["engine"]
        mf.save_manifest(raw / MANIFEST_NAME, m)
    with pytest.raises(SynthaugError, match=f"expanded with engine {TORCH}.*--allow-engine-change"):
        expand(raw, ratio=1.0, generator="bus", steps=STEPS, engine="openvino")
    report = expand(raw, ratio=1.0, generator="bus", steps=STEPS)  # no engine asked: the folder's own
    assert report["added"] == 3 and json.loads((raw / MANIFEST_NAME).read_text())["generator"]["engine"] == TORCH
    expand(raw, ratio=1.5, generator="bus", steps=STEPS, engine="openvino", allow_engine_change=True)
    m = json.loads((raw / MANIFEST_NAME).read_text())
    openvino = engines.resolve_engine("openvino", "cpu", ("torch", "openvino"))
    assert m["generator"]["engine"] == openvino
    assert m["engine_changes"] == [{"from": TORCH, "to": openvino, "cases_before": 6}]
    assert len(m["cases"]) == 9


def test_threads_are_printed_and_recorded(tmp_path, tiny_generator_dir):
    out = tmp_path / "pairs"
    res = CliRunner().invoke(main, ["sample", "--generator", str(tiny_generator_dir), "-n", "2", "--out", str(out),
                                    "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert "synthaug: 1 thread(s)" in res.output
    info = json.loads((out / "pairs.json").read_text())
    assert info["threads"] == 1 and info["engine"] == TORCH
    raw = make_raw(tmp_path, n=6)
    res = CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.5", "--generator", str(tiny_generator_dir),
                                    "--threads", "1"])
    assert res.exit_code == 0, res.output
    assert {e["threads"] for e in json.loads((raw / MANIFEST_NAME).read_text())["cases"].values()} == {1}
    res = CliRunner().invoke(main, ["sample", "--generator", str(tiny_generator_dir), "-n", "1", "--out",
                                    str(tmp_path / "x"), "--threads", "0"])
    assert res.exit_code == 2 and "--threads" in res.output
