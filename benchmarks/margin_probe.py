"""Do asked-for soft margins come out soft? A probe of sampling options in minutes (issue 34).

For each ``--generator NAME=CHECKPOINT[,key=value...]`` (a descriptor checkpoint; options as in
``descriptor_quality.py``, e.g. ``edge_gain=3``): ``--n`` pairs asked to be *indistinct* and ``2 n`` pairs
at the default draws, read by the checkpoint's own descriptor rule: the share of each margin word and the
median boundary sharpness. The same seeds for every spec, so specs differ only by their options. A probe,
not the full measurement (contrast, control, judge, FD): ``descriptor_quality.py`` is that, and options are
chosen on these generated pairs only, never on a downstream test.

    OMP_NUM_THREADS=1 python benchmarks/margin_probe.py --generator g1=checkpoints/bus-ramp-cal-busi-128 \\
        --generator g2=checkpoints/bus-ramp-cal-busi-128,edge_gain=2 --n 32 --seed 77 --name margin_probe_ramp
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import write_results  # noqa: E402
from benchmarks.descriptor_quality import margin_reading, parse_spec  # noqa: E402
from synthaug import Condition, create_generator  # noqa: E402
from synthaug.pipelines.base import sample_cases  # noqa: E402


def read_margins(gen, n: int, seed: int) -> dict:
    """``n`` pairs of ``gen`` read by its rule: the share of each margin word and the median sharpness."""
    return margin_reading(gen.descriptor_rule, sample_cases(gen, seed, range(n), lambda k: Condition(), progress=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", action="append", required=True, metavar="NAME=CHECKPOINT[,key=value...]")
    ap.add_argument("--n", type=int, default=32, help="asked-indistinct pairs per spec (twice as many default draws)")
    ap.add_argument("--seed", type=int, default=77)
    ap.add_argument("--name", default="margin_probe", help="results/<name>.json and .md")
    args = ap.parse_args(argv)
    rows = []
    for spec in args.generator:
        name, path, options = parse_spec(spec)
        gen, t0 = create_generator(path, **options), time.time()
        if getattr(gen, "descriptor_rule", None) is None:
            raise SystemExit(f"{path}: not a checkpoint trained on descriptor prompts; nothing to ask for")
        rows.append({"generator": name, "checkpoint": path, "options": options,
                     "asked_indistinct": read_margins(gen.with_descriptors({"margin": {"indistinct": 1.0}}),
                                                      args.n, args.seed),
                     "default": read_margins(gen, 2 * args.n, args.seed)})
        rows[-1]["seconds"] = round(time.time() - t0, 1)
        print(rows[-1], flush=True)
    md = [f"Margins as read by each checkpoint's rule: {args.n} pairs asked to be indistinct and {2 * args.n} at "
          f"the default draws, seed {args.seed} (same seeds for every row).", "",
          "| generator | options | asked indistinct: read indistinct | median sharpness | default draws: "
          "circumscribed / indistinct / irregular | seconds |", "|---|---|---|---|---|---|"]
    for r in rows:
        a, d = r["asked_indistinct"], r["default"]["read_as"]
        md.append(f"| {r['generator']} | {r['options'] or '-'} | {a['read_as']['indistinct']:.0%} | "
                  f"{a['median_sharpness']:.2f} | {d['circumscribed']:.0%} / {d['indistinct']:.0%} / "
                  f"{d['irregular']:.0%} | {r['seconds']:.0f} |")
    write_results(args.name, {"n": args.n, "seed": args.seed, "rows": rows}, "\n".join(md))


if __name__ == "__main__":
    main()
