"""Checkpoint integrity (issue 13, item 4): every saved checkpoint records a sha256 per file in its
synthaug.json, loading verifies it, and a missing, truncated or bit-flipped weight file is one clear
SynthaugError line (CLI: exit 2, no traceback) instead of a traceback or silently black images."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.expand import expand
from synthaug.models.unets import pixel_unet
from synthaug.paths import checkpoints_root
from synthaug.pipelines.checkpoint import (CARD_NAME, FILE_HASHES, GENERATOR_INFO, checkpoint_files, file_sha256,
                                           record_file_hashes, verify_checkpoint)
from synthaug.pipelines.registry import create_generator, resolve_checkpoint
from synthaug.pipelines.pig import PIGPipeline, save_pig
from synthaug.pipelines.schedulers import training_scheduler
from synthaug.training.cards import record_training_data

from test_expand import make_raw, snapshot

# every checkpoint folder, also the finished parts of a fit stored part by part (checkpoints/own-*-parts)
SHIPPED = sorted(p.parent for p in checkpoints_root().rglob(GENERATOR_INFO))
TINY = dict(block_out_channels=(8, 16), attention_levels=(1,), norm_num_groups=4)
UNET = "unet/diffusion_pytorch_model.safetensors"
VAE = "vae/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def pig_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    pipe = PIGPipeline(pixel_unet(2, 1, 16, num_class_embeds=3, **TINY), pixel_unet(2, 1, 16, num_class_embeds=3, **TINY),
                       training_scheduler())
    return save_pig(pipe, tmp_path_factory.mktemp("pig"), {"output_size": 32, "default_steps": 2})


@pytest.fixture
def bus_copy(tmp_path) -> Path:
    """The shipped bus checkpoint, copied (23 MB) so it can be damaged."""
    return Path(shutil.copytree(checkpoints_root() / "bus-busi-128", tmp_path / "bus copy"))


def info(folder: Path) -> dict:
    return json.loads((folder / GENERATOR_INFO).read_text(encoding="utf-8"))


def one_line_error(result, only_line: bool = True) -> str:
    """The CLI's output for a failure: exit 2, one 'Error:' line, no traceback (and, when the hashes catch
    it before diffusers is called, nothing else)."""
    text = result.output.strip()
    errors = [ln for ln in text.splitlines() if ln.startswith("Error:")]
    assert result.exit_code == 2 and "Traceback" not in text and len(errors) == 1, text
    assert not only_line or len(text.splitlines()) == 1, text
    return errors[0]


# ----------------------------------------------------------------------------- recorded on save
def test_saving_records_a_sha256_per_file(pig_dir):
    files = info(pig_dir)[FILE_HASHES]
    on_disk = {f.relative_to(pig_dir).as_posix() for f in pig_dir.rglob("*") if f.is_file()} - {GENERATOR_INFO}
    assert set(files) == on_disk and "model_x/diffusion_pytorch_model.safetensors" in files
    assert all(files[n] == file_sha256(pig_dir / n) for n in files)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a hashed checkpoint loads without any warning
        create_generator(pig_dir)


def test_rewriting_synthaug_json_keeps_the_hashes(pig_dir, tmp_path):
    folder = Path(shutil.copytree(pig_dir, tmp_path / "pig"))

    class Rec:
        case_id = "case_001"

    class Data:
        records = [Rec()]

    record_training_data(folder, "somewhere", Data())
    assert info(folder)["training_data"]["n_cases"] == 1 and info(folder)[FILE_HASHES] == info(pig_dir)[FILE_HASHES]
    verify_checkpoint(folder)


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.relative_to(checkpoints_root()).as_posix())
def test_every_shipped_checkpoint_records_and_matches_its_hashes(folder):
    files = info(folder)[FILE_HASHES]
    assert set(files) == {f.relative_to(folder).as_posix() for f in checkpoint_files(folder)}
    assert any(n.endswith(".safetensors") for n in files) and not {CARD_NAME, GENERATOR_INFO} & set(files)
    verify_checkpoint(folder)


# ----------------------------------------------------------------------------- verified on load
def _flip(path: Path, offset: int, n: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[offset:offset + n] = bytes(b ^ 0xFF for b in data[offset:offset + n])
    path.write_bytes(bytes(data))


FAULTS = {
    "missing unet": lambda f: (f / UNET).unlink(),
    "truncated unet": lambda f: (f / UNET).write_bytes((f / UNET).read_bytes()[:100_000]),
    "4 KB flipped in the vae": lambda f: _flip(f / VAE, (f / VAE).stat().st_size // 2),  # header intact
}


@pytest.mark.parametrize("fault", FAULTS)
def test_damaged_shipped_checkpoint_is_one_clear_error(bus_copy, fault):
    FAULTS[fault](bus_copy)
    name = UNET if "unet" in fault else VAE
    word = "missing" if "missing" in fault else "corrupt (sha256 mismatch"
    with pytest.raises(SynthaugError) as e:
        create_generator(bus_copy)
    assert f"checkpoint {bus_copy}: file {name} is {word}" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SynthaugError, match="is (missing|corrupt)"):
        resolve_checkpoint(bus_copy)  # what expand identifies a generator with, before loading anything
    text = one_line_error(CliRunner().invoke(main, ["sample", "--generator", str(bus_copy), "-n", "1",
                                                    "--out", str(bus_copy.parent / "out")]))
    assert name in text


def test_expand_with_a_corrupt_checkpoint_changes_nothing(bus_copy, tmp_path):
    raw = make_raw(tmp_path)
    before = snapshot(raw)
    _flip(bus_copy / VAE, 5_000_000)
    for dry_run in (True, False):
        with pytest.raises(SynthaugError, match="is corrupt"):
            expand(raw, 0.5, generator=str(bus_copy), dry_run=dry_run)
    text = one_line_error(CliRunner().invoke(main, ["expand", str(raw), "--ratio", "0.5", "--generator", str(bus_copy)]))
    assert VAE in text and snapshot(raw) == before


# ----------------------------------------------------------------------------- checkpoints without hashes
def _unhashed(src: Path, dst: Path) -> Path:
    folder = Path(shutil.copytree(src, dst))
    data = info(folder)
    del data[FILE_HASHES]
    (folder / GENERATOR_INFO).write_text(json.dumps(data, indent=2) + "\n")
    return folder


def test_unhashed_checkpoint_loads_with_one_warning_and_can_be_hashed(pig_dir, tmp_path):
    folder = _unhashed(pig_dir, tmp_path / "old")
    with pytest.warns(UserWarning, match="records no file hashes.*record_file_hashes"):
        create_generator(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per folder and process
        create_generator(folder)
    assert record_file_hashes(folder) == info(pig_dir)[FILE_HASHES]  # same files, same hashes
    _flip(folder / "model_y" / "diffusion_pytorch_model.safetensors", 20_000, 64)
    with pytest.raises(SynthaugError, match="model_y/diffusion_pytorch_model.safetensors is corrupt"):
        create_generator(folder)


@pytest.mark.filterwarnings("ignore:checkpoint .* records no file hashes")
@pytest.mark.parametrize("fault", ["missing weights", "truncated weights", "broken header", "malformed config"])
def test_unhashed_checkpoint_load_failures_are_one_line_naming_the_file(pig_dir, tmp_path, fault):
    folder = _unhashed(pig_dir, tmp_path / "old")
    weights = folder / "model_x" / "diffusion_pytorch_model.safetensors"
    if fault == "missing weights":
        weights.unlink()
    elif fault == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:5000])
    elif fault == "broken header":
        weights.write_bytes(b"\xff" * 16 + weights.read_bytes()[16:])
    else:
        (folder / "model_x" / "config.json").write_text("{not json")
    name = "model_x/config.json" if fault == "malformed config" else "model_x"
    with pytest.raises(SynthaugError, match=f"checkpoint {folder}.*{name}") as e:
        create_generator(folder)
    assert "\n" not in str(e.value)
    text = one_line_error(CliRunner().invoke(main, ["sample", "--generator", str(folder), "-n", "1",
                                                    "--out", str(tmp_path / "out")]), only_line=False)
    assert name in text  # diffusers may log its own lines before it; ours is the one "Error:" line
