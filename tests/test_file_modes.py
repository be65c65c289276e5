"""File modes (issue 13, item 7): atomic writes must not leave 0600 files in a shared dataset.

Every write goes through a mkstemp temporary (created 0600) renamed into place;
a rewritten file must keep its mode, a new file must get 0666 minus the umask.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from synthaug.expand import expand, revert
from synthaug.io.images import write_bytes, write_json, write_png
from synthaug.io.manifest import MANIFEST_NAME

from test_expand import make_raw


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture(autouse=True)
def _no_preprocessed(monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)


def test_new_files_get_the_umask_default(tmp_path):
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "a.bin", b"x")
        write_png(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.bin") == 0o640 and mode(tmp_path / "b.png") == 0o640


def test_rewrite_keeps_the_existing_mode(tmp_path, umask022):
    path = tmp_path / "dataset.json"
    for m in (0o644, 0o664, 0o600, 0o444):
        path.write_text("{}")
        path.chmod(m)
        write_json(path, {"m": m})
        assert mode(path) == m, oct(m)
        assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("dj_mode", [0o644, 0o664])  # 0664: a dataset shared by a group stays group-writable
def test_expand_and_revert_keep_dataset_json_mode_and_give_new_files_0644(tmp_path, tiny_generator_dir, umask022,
                                                                          dj_mode):
    raw = make_raw(tmp_path)
    dj = raw / "dataset.json"
    dj.chmod(dj_mode)
    expand(raw, 1.0, generator=str(tiny_generator_dir))
    assert mode(dj) == dj_mode
    synthetic = sorted(raw.glob("*Tr/synth_*.png"))
    assert len(synthetic) == 12  # 6 images + 6 labels
    assert {p.name: mode(p) for p in synthetic} == {p.name: 0o644 for p in synthetic}
    assert mode(raw / MANIFEST_NAME) == 0o644
    revert(raw)
    assert mode(dj) == dj_mode and not list(raw.glob("*Tr/synth_*"))
