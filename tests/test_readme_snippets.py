"""Every code block of README.md runs here (issue 13, items 9 and 10).

The README is read as a user reads it, block by block in order, in a fresh
working folder:

* ```bash blocks go through a small interpreter, line by line. synthaug
  commands that do the quick start's work (convert, expand, splits, revert,
  sample, masks) run for real through click, on a 12-case BUSI subset;
  ``export`` lines run in bash (so ``$PWD`` and ``$(...)`` behave as in a
  shell); ``rm -rf`` runs inside the working folder only. nnU-Net's
  ``nnUNetv2_plan_and_preprocess`` and ``nnUNetv2_train`` go through their
  own argparse entry points with the work stubbed out, plus the checks a
  CPU-only user needs: training on ``-device cpu``, planning without
  ``nnUNet_n_proc_DA=0``, and nnUNetTrainerSynthAug never on an expanded
  folder. The install and test lines are recognised, not run; the demo line
  is parsed (a tiny-generator demo is tested below). A command
  the interpreter does not know fails the test, so a new README line cannot
  go untested.
* ```python blocks then run in one namespace, in that folder (after the bash
  blocks, so the folder route 2 converts exists): route 2's training loop runs for
  two epochs on the subset.
* Routes 2 and 3 (your own data): ``mydata/`` is the BUSI subset laid out
  as a user's image and mask folders with a types CSV, so ``convert folder``
  runs for real; ``fit`` (tested in tests/test_fit.py) and its
  ``accelerate launch`` form are parsed, and the tiny test generator stands in
  for ``OUT/checkpoint`` so the ``expand`` line after it runs for real.

CPU budget (the file runs in well under a minute): ``CPU_EDITS`` lists every
text change made to a block before running it; anything else runs verbatim.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from synthaug.cli import main
from synthaug.io.images import sha256_file

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BUSI_TRAIN, BUSI_TEST = 10, 2  # subset: round(0.25 x 10) = 2 synthetic cases per expand
CPU_EDITS = {
    "../shared/data/BUSI": None,  # -> the BUSI subset (filled in by the fixture)
    "--size 128": "--size 64",
    "-n 16 ": "-n 2 ",
    "cache_size=128": "cache_size=2",
}
RUN = {"convert", "expand", "splits", "revert", "sample", "masks"}  # synthaug commands run for real
NOT_RUN = (  # lines that install or test the package: this test already runs inside that installation
    ["python3", "-m", "venv", ".venv"],
    [".venv/bin/pip", "install"],
    [".venv/bin/python", "-m", "pytest"],
)


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.M | re.S)


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def busi_subset(busi_root, tmp_path) -> Path:
    """The first BUSI train cases of each type and two test cases, linked into a BUSI-shaped folder."""
    split = json.loads((busi_root / "split.json").read_text(encoding="utf-8"))
    train = ([n for n in split["train"] if n.startswith("benign/")][: BUSI_TRAIN // 2]
             + [n for n in split["train"] if n.startswith("malignant/")][: BUSI_TRAIN // 2])
    test = [n for n in split["test"] if (busi_root / "Dataset_BUSI_with_GT" / f"{n}.png").is_file()][:BUSI_TEST]
    out = tmp_path / "BUSI"
    for name in train + test:
        src = busi_root / "Dataset_BUSI_with_GT" / name
        files = [src.with_name(f"{src.name}.png"), *src.parent.glob(f"{glob_escape(src.name)}_mask*.png")]
        for f in files:
            dst = out / "Dataset_BUSI_with_GT" / Path(name).parent / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.symlink_to(f)
    (out / "split.json").write_text(json.dumps({"train": train, "test": test}))
    return out


def glob_escape(name: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", name)


class Shell:
    """Runs README bash lines as described in the module docstring; ``self.log`` says what each did."""

    def __init__(self, work: Path, monkeypatch, fit_stand_in: Path | None = None):
        self.work, self.mp, self.log = work, monkeypatch, []
        self.fit_stand_in = fit_stand_in  # a generator checkpoint copied to OUT/checkpoint of a parsed `fit`
        self.converted: dict[Path, dict[str, str]] = {}  # raw folder -> files right after convert

    def run_line(self, line: str) -> None:
        if line.startswith("export "):
            return self.export(line)
        for part in " ".join(shlex.split(line, comments=True)).split(" && "):
            if part.strip():
                self.command(shlex.split(part))

    def export(self, line: str) -> None:
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        out = subprocess.run(["bash", "-ec", f"{line}\nenv -0"], cwd=self.work, capture_output=True, check=True,
                             env={**os.environ, "PATH": path}).stdout.decode()
        new = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
        for name in shlex.split(line.split("=")[0])[1:] + re.findall(r"\s(\w+)=", line):
            assert new.get(name), f"{line!r} left {name} empty"
            self.mp.setenv(name, new[name])
        self.log.append(("export", line))

    def command(self, argv: list[str]) -> None:
        env = {}
        while argv and re.fullmatch(r"\w+=\S*", argv[0]):  # VAR=value command ...
            k, v = argv.pop(0).split("=", 1)
            env[k] = v
        for k, v in env.items():
            self.mp.setenv(k, v)
        argv = [os.path.expandvars(a) for a in argv]
        unset = sorted({v for a in argv for v in re.findall(r"\$\{?(\w+)", a)})
        assert not unset, f"README runs {shlex.join(argv)!r} before it sets {', '.join(unset)}"
        prog = Path(argv[0]).name
        if any(argv[: len(p)] == p for p in NOT_RUN):
            self.log.append(("not run", argv))
        elif argv[:1] == ["source"]:
            assert argv[1] == ".venv/bin/activate" and (Path(sys.prefix) / "bin" / "activate").is_file()
            self.log.append(("in the venv already", argv))
        elif prog == "synthaug":
            self.synthaug(argv[1:])
        elif prog == "accelerate":
            self.accelerate(argv)
        elif prog == "nnUNetv2_plan_and_preprocess":
            self.plan(argv)
        elif prog == "nnUNetv2_train":
            self.train(argv)
        elif argv[:2] == ["rm", "-rf"]:
            for p in map(Path, argv[2:]):
                assert p.resolve().is_relative_to(self.work), f"README rm -rf outside its folders: {p}"
                shutil.rmtree(p, ignore_errors=True)
            self.log.append(("rm", argv))
        else:
            pytest.fail(f"README command not covered by this test: {shlex.join(argv)}")
        for k in env:
            self.mp.delenv(k)

    # ------------------------------------------------------------------ synthaug
    def synthaug(self, args: list[str]) -> None:
        if args[0] == "fit":
            return self.fit(args)
        if args[0] not in RUN:
            return self.parse_only(args)
        res = CliRunner().invoke(main, args, catch_exceptions=False)
        assert res.exit_code == 0, f"synthaug {shlex.join(args)}:\n{res.output}"
        self.log.append(("ran", ["synthaug", *args]))
        if args[0] == "convert":
            raw = Path(res.stdout.strip().splitlines()[-1])  # stderr says what was made
            self.converted[raw] = snapshot(raw)
        if args[0] == "revert":  # "back to exactly the original raw folder"
            raw = Path(args[1])
            assert snapshot(raw) == self.converted[raw]

    def fit(self, args: list[str]) -> None:
        self.parse_only(args)
        ctx = main.get_command(click.Context(main), "fit").make_context("fit", list(args[1:]))
        out = Path(ctx.params["out"]) / "checkpoint"
        if self.fit_stand_in is not None and not out.exists():
            shutil.copytree(self.fit_stand_in, out)

    def accelerate(self, argv: list[str]) -> None:
        from accelerate.commands.launch import launch_command_parser

        assert argv[1] == "launch", argv
        ns = launch_command_parser().parse_args(argv[2:])
        assert ns.module and ns.training_script == "synthaug.cli", "run synthaug under accelerate with -m synthaug.cli"
        self.log.append(("parsed", argv[:2]))
        self.synthaug(list(ns.training_script_args))

    def parse_only(self, args: list[str]) -> None:
        cmd, rest, name = main, list(args), "synthaug"
        while isinstance(cmd, click.Group):
            name = rest.pop(0)
            cmd = cmd.get_command(click.Context(cmd), name)
            assert cmd is not None, f"synthaug has no command {name!r}"
        cmd.make_context(name, rest)  # raises click.UsageError on a bad command line
        self.log.append(("parsed", ["synthaug", *args]))

    # ------------------------------------------------------------------ nnU-Net
    def raw_folder(self, dataset_id: str) -> Path:
        found = sorted(Path(os.environ["nnUNet_raw"]).glob(f"Dataset{int(dataset_id):03d}_*"))
        assert len(found) == 1, f"no raw folder for dataset {dataset_id} at this point of the README"
        return found[0]

    def plan(self, argv: list[str]) -> None:
        from nnunetv2.experiment_planning import plan_and_preprocess_entrypoints as pp

        calls = []
        self.mp.setattr(pp, "extract_fingerprints", lambda d, *a, **k: calls.append(d))
        self.mp.setattr(pp, "plan_experiments", lambda *a, **k: "nnUNetPlans")
        self.mp.setattr(pp, "preprocess", lambda *a, **k: None)
        self.mp.setattr(sys, "argv", argv)
        pp.plan_and_preprocess_entry()
        assert os.environ.get("nnUNet_n_proc_DA") != "0", "the planner fails with nnUNet_n_proc_DA=0"
        for d in calls[0]:
            self.raw_folder(d)
        self.log.append(("parsed", argv))

    def train(self, argv: list[str]) -> None:
        from nnunetv2.run import run_training as rt

        from integrations.nnunet.nnUNetTrainerSynthAug import synthaug_settings
        from integrations.nnunet.synthetic_cases import refuse_expanded_raw

        calls = []
        self.mp.setattr(rt, "run_training", lambda *a, **k: calls.append((a, k)))
        self.mp.setattr(sys, "argv", argv)
        try:
            rt.run_training_entry()
        finally:
            torch.set_num_threads(1)  # the entry point sets one thread per CPU for -device cpu
        (dataset, _, _, trainer, *_), kwargs = calls[0]
        assert kwargs["device"].type == "cpu", "README training must run without a GPU (-device cpu)"
        raw = self.raw_folder(dataset)
        if trainer != "nnUNetTrainer":
            folders = os.environ.get("nnUNet_extTrainer", "").split(os.pathsep)
            assert any(f"class {trainer}(" in p.read_text(encoding="utf-8")
                       for f in folders if f for p in Path(f).glob("*.py")), f"nnU-Net would not find {trainer}"
        if "SynthAug" in trainer:
            synthaug_settings()  # the README's SYNTHAUG_* values are valid
            refuse_expanded_raw(raw)  # route 2 runs on a folder the trainer accepts
        self.log.append(("parsed", argv))


def edit(text: str, busi: Path) -> str:
    for old, new in CPU_EDITS.items():
        text = text.replace(old, str(busi) if new is None else new)
    return text


def user_folders(busi: Path, work: Path) -> None:
    """The BUSI subset as the README's routes 2 and 3 expect it: mydata/images, mydata/masks, types.csv."""
    from synthaug.io.public_sets import iter_busi

    rows = []
    for k, case in enumerate(iter_busi(busi, "train")):
        for sub, arr in (("images", case["image"]), ("masks", case["mask"].astype("uint8") * 255)):
            (work / "mydata" / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(work / "mydata" / sub / f"case{k}.png")
        rows.append(f"case{k}.png,{case['label']}")
    (work / "mydata" / "types.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.realdata
def test_readme_code_blocks_run(busi_subset, tiny_generator_dir, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    user_folders(busi_subset, work)
    monkeypatch.chdir(work)
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer", "nnUNet_n_proc_DA",
              "SYNTHAUG_RATIO", "SYNTHAUG_SOURCE", "SYNTHAUG_SEED"):
        monkeypatch.delenv(k, raising=False)
    shell = Shell(work.resolve(), monkeypatch, fit_stand_in=tiny_generator_dir)
    bash = blocks("bash")
    assert len(bash) >= 6
    for block in bash:
        for line in edit(block, busi_subset).splitlines():
            if line.strip():
                shell.run_line(line.strip())
    ran = [" ".join(argv[:2]) for what, argv in shell.log if what == "ran"]
    assert ran.count("synthaug convert") == 4 and "synthaug expand" in ran and "synthaug revert" in ran
    pre = Path(os.environ["nnUNet_preprocessed"])
    assert (work / "nnunet" / "preprocessed").is_dir()  # route 1 made it (splits), so the check below means something
    assert not (pre / "Dataset501_BUSI").exists()  # revert --preprocessed, route 1's clean-up
    trainers = [a[a.index("-tr") + 1] for what, a in shell.log if what == "parsed" and "-tr" in a]
    assert "nnUNetTrainerTiny" in trainers and "nnUNetTrainerSynthAugTiny" in trainers  # CPU smoke tests

    namespace: dict = {}
    python = blocks("python")
    assert python, "README has no python block"
    for block in python:
        exec(compile(edit(block, busi_subset), "README.md", "exec"), namespace)
    assert namespace["mix"][len(namespace["real"])]["synthetic"] is True
    assert torch.isfinite(namespace["loss"]) and namespace["batch"]["image"].shape[1] == 1  # the loop ran
    print("\n".join(f"{what}: {a if isinstance(a, str) else shlex.join(a)}" for what, a in shell.log))


def test_readme_command_reference_lists_every_command():
    table = README.read_text(encoding="utf-8").split("## Command reference", 1)[1].split("\n## ", 1)[0]

    def paths(group: click.Group, prefix: str):
        for name, cmd in group.commands.items():
            if isinstance(cmd, click.Group):
                yield from paths(cmd, f"{prefix} {name}")
            else:
                yield f"{prefix} {name}"

    missing = [p for p in paths(main, "synthaug") if f"| `{p}" not in table]
    assert not missing, f"commands missing from the README's command reference: {missing}"


def test_demo_preview_shows_every_case(tiny_generator_dir, tmp_path):
    """README: the demo writes 16 base + 4 synthetic cases and a preview of them: all 20 tiles."""
    from synthaug.demo import run_demo

    report = run_demo(tmp_path, generator=str(tiny_generator_dir), n=16)
    raw = Path(report["raw_dataset"])
    assert len(list((raw / "imagesTr").glob("*.png"))) == 20
    w, h = Image.open(report["preview"]).size
    assert (w, h) == (8 * 128, 3 * (128 + 14))  # 20 tiles in rows of 8
