"""Keep a work folder's finished runs across machines: the runs no committed report records yet, as one JSON.

A matrix outlives its sessions, and a new session may start on a machine without the work folder. A report
is written only when a seed's runs are all done, so finished runs of an unfinished seed would train again.
This writes them to ``benchmarks/results/pending/<name>.json`` (commit it); ``scarcity_matrix.py`` and
``scarcity_own_data.py`` with ``--import-committed`` import them with the reports (``seg.py --import-runs``
takes the file like a report: only runs of exactly the plan's settings and bank are taken). The file is
rewritten whole each time, so runs that reached a report drop out of it. Not a result: nothing reads its
scores but the import.

    python benchmarks/keep_runs.py --work /work/runs/bench_work --name matrix_bf16
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import PENDING, RESULTS, write_results  # noqa: E402


def run_identity(run: dict) -> str:
    """What makes two run records the same run (the fields ``run_path`` files a run under)."""
    return json.dumps([run.get("task"), run.get("settings"), run.get("bank"), run.get("model"), run.get("condition"),
                       run.get("seed")], sort_keys=True)


def committed_reports() -> list[str]:
    """Text of every results JSON as committed (``git show HEAD:``), pending files excluded: a running matrix
    rewrites the working-tree reports with fewer seeds, and only what is committed reaches a new machine."""
    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=RESULTS, capture_output=True, text=True,
                               check=True).stdout.strip())
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", "HEAD", str(RESULTS.relative_to(root))], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split()
    pending = str(PENDING.relative_to(root))
    return [subprocess.run(["git", "show", f"HEAD:{n}"], cwd=root, capture_output=True, text=True, check=True).stdout
            for n in names if n.endswith(".json") and not n.startswith(pending + "/")]


def recorded_runs() -> set[str]:
    """Identities of the runs every committed report holds."""
    seen = set()
    for text in committed_reports():
        try:
            runs = json.loads(text).get("runs")
        except (ValueError, AttributeError):
            continue
        if isinstance(runs, list):
            seen.update(run_identity(r) for r in runs if isinstance(r, dict) and "settings" in r)
    return seen


def finished_runs(work: Path, task: str, profile: str) -> list[dict]:
    """Every finished run JSON under ``work/runs/<task>-<profile>-<settings key>/``."""
    runs = []
    for folder in sorted((work / "runs").glob(f"{task}-{profile}-*")):
        for path in sorted(folder.glob("*/*.json")):
            runs.append(json.loads(path.read_text(encoding="utf-8")))
    return runs


def main(argv=None) -> Path | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", required=True, help="file stem under benchmarks/results/pending/")
    ap.add_argument("--task", default="seg")
    ap.add_argument("--profile", default="scarcity")
    args = ap.parse_args(argv)
    if not (args.work / "runs").is_dir():
        raise SystemExit(f"{args.work}: no runs/ folder (not a benchmark work folder)")
    seen = recorded_runs()
    pending = [r for r in finished_runs(args.work, args.task, args.profile) if run_identity(r) not in seen]
    lines = [f"{len(pending)} finished runs of {args.work} that no committed report holds yet "
             f"({args.task} / {args.profile}); imported by --import-committed, not a result."]
    lines += [f"- {r['condition']}, real fraction {r.get('real_fraction')}, seed {r['seed']}, bank {r['bank']}"
              for r in pending]
    payload = {"task": args.task, "profile": args.profile, "runs": pending}
    out = write_results(args.name, payload, "\n".join(lines) + "\n", out_dir=PENDING)
    print(lines[0].replace(" (", f" in {out} (", 1), flush=True)
    return out


if __name__ == "__main__":
    main()
