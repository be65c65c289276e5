"""Issue 13 (items 1-3, 7-9): expand and revert against concurrent processes, forged manifests,
lost manifests, hand edits, relative paths, a full disk and ratios that round to nothing.

Concurrency runs real processes: a subprocess expands with the tiny test generator blocked
until the test creates a 'go' file, so the moments at which the others start are certain.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import synthaug.expand.identity as expand_identity
import synthaug.expand.run as expand_run
from synthaug.cli import main
from synthaug.errors import SynthaugError
from synthaug.expand import expand, revert, write_splits
from synthaug.io import manifest as mf
from synthaug.io.manifest import LOCK_NAME, MANIFEST_NAME, Folder
from synthaug.io.nnunet_raw import RawDataset
from test_expand import TESTS, gen, make_raw, manifest, raw, real_files, snapshot, twin  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _no_preprocessed(monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    monkeypatch.delenv("SYNTHAUG_LOCK_TIMEOUT", raising=False)




def cli(args) -> "click.testing.Result":
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(output: str, message: str) -> None:
    """What the CLI promises for a SynthaugError: exit 2 (checked by the caller), one 'Error: ...' line
    (after, maybe, a progress bar), no traceback."""
    _, sep, tail = output.partition("Error: ")
    assert sep and "\n" not in tail.strip() and message in tail, output
    assert "Traceback" not in output


def consistent(root: Path) -> None:
    """numTraining equals the cases on disk, every synthetic file is in the manifest, no lock is left."""
    ds = RawDataset.open(root)  # strict: numTraining == cases on disk
    synth = {c for c in ds.case_ids() if c.startswith("synth_")}
    assert synth == set(manifest(root)["cases"]) and manifest(root)["pending"] == {}
    assert not list(root.glob(".synthaug*.lock"))


# ----------------------------------------------------------------------------- 1. one writer per folder
_BLOCKED = """
import os, sys, time
sys.path.insert(0, {tests!r})
import conftest
import synthaug.expand.run  # what expand imports lazily: 'ready' means ready to reach the lock
from synthaug.cli import main
original = conftest.TinyConvGenerator._sample_batch
def blocked(self, seeds, conditions):
    while not os.path.exists({go!r}):
        time.sleep(0.05)
    return original(self, seeds, conditions)
if {block!r}:
    conftest.TinyConvGenerator._sample_batch = blocked
sys.stderr.write("ready\\n")
sys.stderr.flush()
main({args!r})
"""


def start(root: Path, args: list, go: Path, block: bool = False, timeout: float = 120) -> subprocess.Popen:
    """``synthaug ARGS`` in a real process (generation waits for ``go`` when ``block``)."""
    script = _BLOCKED.format(tests=str(TESTS), go=str(go), block=block, args=[str(a) for a in args])
    env = {**os.environ, "SYNTHAUG_LOCK_TIMEOUT": str(timeout), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, text=True, encoding="utf-8", errors="replace")


def wait_for_holder(lock: Path, proc: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if json.loads(lock.read_text(encoding="utf-8"))["pid"] == proc.pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{lock} never named pid {proc.pid}")


def ready(proc: subprocess.Popen) -> None:
    """Wait until ``proc`` has imported everything and is about to run, then give it a moment: a
    second's head start is ample to finish a revert or reach the lock."""
    seen = []
    while not seen or seen[-1] not in ("ready\n", ""):  # import-time warnings may come first
        seen.append(proc.stderr.readline())
    assert seen[-1] == "ready\n", "".join(seen)
    time.sleep(1.0)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_second_expand_waits_or_fails_naming_the_holder(raw, gen, tmp_path):
    go = tmp_path / "go"
    first = start(raw, ["expand", raw, "--ratio", "1", "--generator", gen, "--batch-size", "1"], go, block=True)
    try:
        wait_for_holder(raw / LOCK_NAME, first)
        impatient = start(raw, ["expand", raw, "--ratio", "0.5", "--generator", gen], go, timeout=0.5)
        code, _, err = finish(impatient)
        assert code == 2, err
        one_line_error(err, f"is in use by `synthaug expand` (pid {first.pid}")
        assert first.poll() is None  # the holder was still running: the refusal was the lock's
        patient = start(raw, ["expand", raw, "--ratio", "0.5", "--generator", gen], go, timeout=300)
        ready(patient)
        go.touch()
        code, _, err = finish(first)
        assert code == 0, err
        code, out, err = finish(patient)
        assert code == 0, err
    finally:
        go.touch()
        for p in (first,):
            if p.poll() is None:
                p.kill()
    assert "0 synthetic case(s) added, 3 removed in" in out  # it ran after the first one, on its result
    consistent(raw)
    assert sorted(manifest(raw)["cases"]) == ["synth_00000", "synth_00001", "synth_00002"]


def test_revert_started_during_expand_waits_and_restores_the_folder(raw, gen, tmp_path):
    before = snapshot(raw)
    go = tmp_path / "go"
    expanding = start(raw, ["expand", raw, "--ratio", "1", "--generator", gen, "--batch-size", "2"], go, block=True)
    try:
        wait_for_holder(raw / LOCK_NAME, expanding)
        reverting = start(raw, ["revert", raw], go, timeout=300)
        ready(reverting)
        go.touch()
        assert finish(expanding)[0] == 0
        code, out, err = finish(reverting)
    finally:
        go.touch()
        if expanding.poll() is None:
            expanding.kill()
    assert code == 0, err
    assert out.startswith("removed 6 synthetic case(s) from")
    assert snapshot(raw) == before  # no orphan, no lock file, dataset.json back


def test_shards_run_in_parallel_but_never_beside_an_unsharded_run(raw, twin, gen, tmp_path):
    go = tmp_path / "go"
    shard0 = start(raw, ["expand", raw, "--ratio", "1", "--generator", gen, "--shard", "0/2"], go, block=True)
    try:
        wait_for_holder(raw / mf.shard_lock_name((0, 2)), shard0)
        code, _, err = finish(start(raw, ["expand", raw, "--ratio", "1", "--generator", gen, "--shard", "1/2"],
                                    go, timeout=0.5))
        assert code == 0, err  # the other shard did not wait for shard 0
        for args, holder in ((["--shard", "0/2"], "--shard 0/2"), ([], "--shard 0/2")):  # same part, or a merge
            code, _, err = finish(start(raw, ["expand", raw, "--ratio", "1", "--generator", gen, *args], go,
                                        timeout=0.5))
            assert code == 2, err
            one_line_error(err, f"in use by `synthaug expand {holder}` (pid {shard0.pid}")
        code, _, err = finish(start(raw, ["revert", raw], go, timeout=0.5))
        assert code == 2 and "in use by" in err, err
        go.touch()
        assert finish(shard0)[0] == 0
    finally:
        go.touch()
        if shard0.poll() is None:
            shard0.kill()
    assert expand(raw, 1.0, generator=gen)["merged"] == 6
    consistent(raw)
    expand(twin, 1.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


def test_a_killed_holder_leaves_no_lock_behind(raw, twin, gen, tmp_path, monkeypatch):
    go = tmp_path / "go"
    holder = start(raw, ["expand", raw, "--ratio", "1", "--generator", gen], go, block=True)
    try:
        wait_for_holder(raw / LOCK_NAME, holder)
        os.kill(holder.pid, signal.SIGKILL)
    finally:
        holder.wait()
    assert (raw / LOCK_NAME).exists()  # SIGKILL removes nothing, but the kernel dropped the lock
    monkeypatch.setenv("SYNTHAUG_LOCK_TIMEOUT", "0")
    expand(raw, 1.0, generator=gen)
    consistent(raw)
    expand(twin, 1.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


# ----------------------------------------------------------------------------- 2. real files are never deleted
def forge(root: Path, edit) -> None:
    """Edit the manifest and recompute its (unkeyed) checksum, as a user or a script could."""
    m = manifest(root)
    edit(m)
    mf.save_manifest(root / MANIFEST_NAME, m)


def test_manifest_listing_a_real_case_is_refused_under_python_O(raw, gen):
    expand(raw, 1.0, generator=gen)
    forge(raw, lambda m: m["cases"].update(case_003=dict(m["cases"]["synth_00000"], index=3)))
    before = snapshot(raw)
    env = {**os.environ, "PYTHONOPTIMIZE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", "from synthaug.cli import main; main()", "revert", str(raw)],
                          capture_output=True, text=True, encoding="utf-8", errors="replace", env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    one_line_error(proc.stderr, "lists case_003 as synthetic")
    assert snapshot(raw) == before  # real and synthetic files all intact


def test_forged_prefix_and_unlisted_deletes_are_refused(raw, gen):
    expand(raw, 1.0, generator=gen)
    pristine = (raw / MANIFEST_NAME).read_bytes()
    forge(raw, lambda m: m.update(prefix="case_", real_cases=[], cases={"case_000": m["cases"]["synth_00000"]}))
    before = snapshot(raw)
    for call in (lambda: revert(raw), lambda: expand(raw, 1.0, generator=gen)):
        with pytest.raises(SynthaugError, match="edited or forged"):
            call()
    assert snapshot(raw) == before
    (raw / MANIFEST_NAME).write_bytes(pristine)
    intact, folder = snapshot(raw), Folder.load(raw)
    for names in ({"case_001"}, {"synth_00000", "case_001"}, {"synth_00042"}):  # real, mixed, unlisted
        with pytest.raises(SynthaugError, match="nothing was deleted"):
            folder.delete(names)
    assert snapshot(raw) == intact


# ----------------------------------------------------------------------------- 3. lost manifest
def test_lost_manifest_stops_expand_and_rebuild_manifest_recovers(raw, gen, tmp_path, monkeypatch):
    real_before = real_files(snapshot(raw))
    pre = tmp_path / "pre"
    (pre / raw.name).mkdir(parents=True)
    monkeypatch.setenv("nnUNet_preprocessed", str(pre))
    expand(raw, 1.0, generator=gen)
    (raw / MANIFEST_NAME).unlink()
    lost = snapshot(raw)
    with pytest.raises(SynthaugError, match="but no synthaug_manifest.json") as err:
        expand(raw, 1.0, generator=gen)
    assert "revert --rebuild-manifest" in str(err.value)
    with pytest.raises(SynthaugError, match="rebuild-manifest"):
        write_splits(raw)
    result = cli(["revert", raw])
    assert result.exit_code == 2
    one_line_error(result.output, "--rebuild-manifest")
    assert snapshot(raw) == lost

    result = cli(["revert", raw, "--rebuild-manifest"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("removed 6 synthetic case(s)")  # the summary line; the notes on stderr
    notes = result.stderr.splitlines()
    assert "original bytes were lost" in notes[0] and "splits_final.json lists the deleted cases" in notes[1]
    ds = RawDataset.open(raw)  # strict
    assert ds.dataset_json["numTraining"] == 6 and len(ds.case_ids()) == 6
    assert real_files(snapshot(raw)) == real_before
    assert not (raw / MANIFEST_NAME).exists() and not list(raw.rglob("synth_*"))
    assert expand(raw, 0.5, generator=gen)["real_cases"] == 6  # usable again


def test_rebuild_manifest_refuses_when_there_is_a_manifest_or_nothing_to_do(raw, gen):
    with pytest.raises(SynthaugError, match="nothing to revert"):
        revert(raw, rebuild_manifest=True)
    expand(raw, 0.5, generator=gen)
    with pytest.raises(SynthaugError, match="without --rebuild-manifest"):
        revert(raw, rebuild_manifest=True)


def test_real_cases_named_like_synthetic_ones_are_not_taken_for_real(tmp_path, gen):
    raw = make_raw(tmp_path, case_prefix="synth_00")  # synth_00000..: reserved names, no manifest
    before = snapshot(raw)
    result = cli(["expand", raw, "--ratio", "1", "--generator", gen])
    assert result.exit_code == 2
    one_line_error(result.output, "rename them")
    assert snapshot(raw) == before


# ----------------------------------------------------------------------------- 7. edits after expand
def test_dataset_json_edits_after_expand_are_kept_and_said(raw, gen):
    expand(raw, 1.0, generator=gen)
    dj = json.loads((raw / "dataset.json").read_text(encoding="utf-8"))
    dj.update(description="my notes", labels={"background": 0, "tumour": 1})
    (raw / "dataset.json").write_text(json.dumps(dj, indent=2), encoding="utf-8")
    report = expand(raw, 0.5, generator=gen)
    assert "dataset.json was edited after expand (description, labels)" in report["notes"][0]
    dj = RawDataset.open(raw).dataset_json
    assert (dj["description"], dj["labels"]["tumour"], dj["numTraining"]) == ("my notes", 1, 9)
    report = revert(raw)
    assert "your edits were kept" in report["notes"][0]
    dj = RawDataset.open(raw).dataset_json
    assert (dj["description"], dj["numTraining"]) == ("my notes", 6)


def test_real_case_added_by_hand_after_expand(raw, gen):
    expand(raw, 1.0, generator=gen)
    for sub, suffix in (("imagesTr", "_0000.png"), ("labelsTr", ".png")):
        shutil.copy(raw / sub / f"case_000{suffix}", raw / sub / f"case_006{suffix}")
    with pytest.raises(SynthaugError, match="added since: case_006; run `synthaug revert"):
        expand(raw, 1.0, generator=gen)
    result = cli(["revert", raw])
    assert result.exit_code == 0, result.output
    assert "case_006 were added after expand: numTraining was set to 7" in result.stderr
    assert RawDataset.open(raw).dataset_json["numTraining"] == 7  # strict open: agrees with the files


# ----------------------------------------------------------------------------- 8. relative nnUNet_preprocessed
def test_relative_preprocessed_path_is_stored_absolute(raw, gen, tmp_path, monkeypatch):
    (tmp_path / "pre" / raw.name).mkdir(parents=True)
    own = b'[{"train": ["case_000"], "val": ["case_001"]}]'
    splits = tmp_path / "pre" / raw.name / "splits_final.json"
    splits.write_bytes(own)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("nnUNet_preprocessed", "pre")
    report = expand(raw, 1.0, generator=gen)
    assert report["splits"] == str(splits) and list(manifest(raw)["splits_backup"]) == [str(splits)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert revert(raw)["splits_restored"] == [str(splits)]
    assert splits.read_bytes() == own and not any(elsewhere.iterdir())


# ----------------------------------------------------------------------------- 9. messages and faults
def test_unwritable_dataset_json_fails_before_generating(raw, gen, monkeypatch):
    before = snapshot(raw)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: (False if Path(p) == raw / "dataset.json" and mode & os.W_OK
                                                            else real_access(p, mode, **k)))
    monkeypatch.setattr(expand_identity, "create_generator", lambda *a, **k: pytest.fail("generated before the check"))
    with pytest.raises(SynthaugError, match="dataset.json is not writable; nothing was changed"):
        expand(raw, 1.0, generator=gen)
    assert snapshot(raw) == before


def test_disk_full_is_one_line_and_a_rerun_finishes(raw, twin, gen, monkeypatch):
    original, writes = expand_run.write_png, {"n": 0}

    def full(path, arr):
        writes["n"] += 1
        if writes["n"] == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, arr)

    monkeypatch.setattr(expand_run, "write_png", full)
    result = cli(["expand", raw, "--ratio", "1", "--generator", gen, "--batch-size", "1"])
    assert result.exit_code == 2
    one_line_error(result.output, "No space left on device while writing")
    assert "run `synthaug expand` again" in result.output
    assert not list(raw.glob(".synthaug*.lock"))
    monkeypatch.undo()
    assert len(manifest(raw)["cases"]) == 2  # what was finished is recorded; the rest resumes
    expand(raw, 1.0, generator=gen)
    expand(twin, 1.0, generator=gen)
    assert snapshot(raw) == snapshot(twin)


def test_ratio_rounding_to_no_case_is_refused(raw, gen):
    before = snapshot(raw)
    with pytest.raises(SynthaugError, match="rounds to no synthetic case"):
        expand(raw, 0.0001, generator=gen)
    result = cli(["expand", raw, "--ratio", "0.0001", "--generator", gen, "--dry-run"])
    assert result.exit_code == 2
    one_line_error(result.output, "ratio 0.0001 of 6 real cases rounds to no synthetic case")
    assert snapshot(raw) == before
