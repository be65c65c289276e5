"""compare_reports.py pairs one condition of two benchmark reports (e.g. a gated bank against an ungated
one) case by case over common seeds, and refuses reports whose runs differ in more than the bank."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.compare_reports import main  # noqa: E402

SETTINGS = {"epochs": 60, "size": 128, "select": "best-val"}
IDS = [f"case{i}" for i in range(40)]


def report(path: Path, condition: str, shift: float, seeds=(0, 1, 2), settings=SETTINGS) -> str:
    rng = np.random.default_rng(7)
    base = rng.uniform(0.5, 0.9, size=len(IDS))
    runs = [{"condition": condition, "seed": s, "model": "unet",
             "metrics": {split: {"dsc": 0.0, "cases": {"ids": IDS, "values": list(base + shift + 0.01 * s)}}
                         for split in ("internal", "external")}} for s in seeds]
    runs.append({"condition": "real", "seed": 0, "model": "unet", "metrics": {}})
    path.write_text(json.dumps({"task": "seg", "profile": "converged", "settings": settings,
                                "split_names": {"internal": "x"}, "runs": runs}), encoding="utf-8")
    return str(path)


def test_a_better_bank_is_a_gain_over_the_seeds_both_have(tmp_path):
    a = report(tmp_path / "gated.json", "pig 100%", 0.05)
    b = report(tmp_path / "ungated.json", "pig 100%", 0.0, seeds=(0, 1))
    main(["--a", f"gated={a}:pig 100%", "--b", f"ungated={b}:pig 100%", "--name", "cmp", "--results-dir", str(tmp_path)])
    assert (tmp_path / "cmp.md").is_file()  # beside the reports it compares (a separate matrix's folder)
    out = json.loads((tmp_path / "cmp.json").read_text())["comparison"]
    assert out["external"]["verdict"] == "gain" and out["external"]["n_seeds"] == 2
    assert out["external"]["diff"] == pytest.approx(0.05) and out["internal"]["cases"]["share_worse"] == 0.0


def test_reports_with_other_settings_or_conditions_are_refused(tmp_path):
    a = report(tmp_path / "a.json", "pig 100%", 0.05)
    b = report(tmp_path / "b.json", "pig 100%", 0.0, settings={**SETTINGS, "epochs": 30})
    with pytest.raises(SystemExit, match="differ in 'settings'"):
        main(["--a", f"a={a}:pig 100%", "--b", f"b={b}:pig 100%", "--name", "cmp"])
    with pytest.raises(SystemExit, match="no finished runs of 'bus 25%'"):
        main(["--a", f"a={a}:bus 25%", "--b", f"b={b}:pig 100%", "--name", "cmp"])
    with pytest.raises(SystemExit, match="is not LABEL=RESULTS.json:CONDITION"):
        main(["--a", a, "--b", f"b={b}:pig 100%", "--name", "cmp"])
    with pytest.raises(SystemExit, match="is a file stem; give its folder as --results-dir"):
        main(["--a", f"a={a}:pig 100%", "--b", f"b={a}:pig 100%", "--name", "sub/cmp"])


def test_the_same_run_made_twice_is_listed_with_its_curves_and_the_seed_spread(tmp_path, monkeypatch):
    import benchmarks.compare_reports as cr
    monkeypatch.setattr(cr, "RESULTS", tmp_path)
    monkeypatch.setattr(cr, "write_results", lambda name, payload, md, out_dir: (tmp_path / f"{name}.json").write_text(
        json.dumps({**payload, "md": md}, default=float)))
    paths = {}
    for name, seeds, lift in (("fast", (0,), 0.02), ("committed", (0, 1, 2), 0.0)):
        data = json.loads(Path(report(tmp_path / f"{name}.json", "ordinary", lift, seeds=seeds)).read_text())
        for r in data["runs"]:
            if r["condition"] == "ordinary":
                r["metrics"]["val"] = {"dsc": 0.8 + 0.01 * r["seed"]}
                r.update(best_epoch=3, epochs_run=4, train_seconds=100.0 if name == "fast" else 160.0,
                         curve=[{"epoch": e, "val": {"dsc": 0.5 + 0.1 * e + (lift if e == 2 else 0)}} for e in range(1, 5)])
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
        paths[name] = tmp_path / f"{name}.json"
    main(["--a", f"fast={paths['fast']}:ordinary", "--b", f"committed={paths['committed']}:ordinary", "--name", "cmp"])
    out = json.loads((tmp_path / "cmp.json").read_text())
    assert out["curve_gaps"] == {"0": pytest.approx(0.02)} and (tmp_path / "cmp_curves.png").stat().st_size > 0
    assert [r["seconds_per_epoch"] for r in out["runs"]] == [25.0, 40.0, 40.0, 40.0]
    assert set(out["spread"]["committed"]) == {"val", "internal", "external"} and not out["spread"]["fast"]
    assert "Largest validation-curve difference" in out["md"] and "| fast | 0 | 3 |" in out["md"]
