"""Sampling speed (issue 18): pairs/s, per-stage seconds, counted FLOPs and the share of the CPU's peak.

Sections (``--section``, repeatable; all by default):

- ``grid``: bus (each engine) and PIG at batch 1/8/16/32 and 1/2 threads: pairs/s and seconds per pair in
  each stage (SCMG mask, prompt encoding, denoising loop, VAE decode, writing PNGs), FLOPs per pair
  counted with torch's FlopCounterMode, and achieved GFLOP/s over the measured bf16 matmul peak;
  diffusers' own StableDiffusionControlNetPipeline on the same weights and inputs at the same batch.
- ``e2e``: ``synthaug expand --ratio 0.25`` (a subprocess: startup, loading and writing included) on a
  copy of ``--raw`` per engine, and in the same run the plain diffusers pipeline making the same number
  of pairs in blocks of 8 (masks and prompts from the same SCMG and text encoder, PNGs written).
- ``threads``: a subprocess per (engine, threads, OMP_WAIT_POLICY), alone and beside a busy job (one
  spinning process started here), timing 16 pairs after a warm-up.

    OMP_NUM_THREADS=1 python benchmarks/speed.py --section grid --name speed_grid_busi128
    python benchmarks/speed.py --section e2e --section threads --raw RAW/Dataset501_BUSI --name speed_busi128
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, write_results  # noqa: E402
from synthaug import Condition, create_generator  # noqa: E402
from synthaug.io.images import read_gray, read_mask, write_png  # noqa: E402
from synthaug.pipelines.base import pair_seeds, to_uint8  # noqa: E402
from synthaug.pipelines.schedulers import make_scheduler  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STAGES = ("scmg_mask", "prompt", "denoise", "decode", "write", "other")
_MISSING = object()


# ----------------------------------------------------------------------------- peak and FLOPs
def matmul_peak(threads: int, dtype=torch.bfloat16, n: int = 2048, reps: int = 6) -> float:
    """Best GFLOP/s of an n x n x n matmul: the ceiling the networks' kernels are measured against."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(reps))
    return 2 * n ** 3 / best / 1e9


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


# ----------------------------------------------------------------------------- stage timing
class Timed:
    """A callable stand-in that adds its wall time to ``timer[key]`` (attributes pass through)."""

    def __init__(self, target, timer: dict, key: str):
        self.__dict__.update(_target=target, _timer=timer, _key=key)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._target(*args, **kwargs)
        finally:
            self._timer[self._key] += time.perf_counter() - t0

    def __getattr__(self, name):
        return getattr(self._target, name)


@contextmanager
def instrument(gen, timer: dict):
    """Time gen's stages in place (the generator's own code path runs unchanged), undone on exit."""
    patches = [(gen, "pipe", "pipe")]
    if gen.name == "bus":
        patches += [(gen.masks, "complete", "scmg_mask"), (gen.masks, "pipe", "scmg_mask"), (gen, "prompt", "prompt"),
                    (gen, "text", "prompt"),
                    (gen.runner, "decode", "decode") if gen.runner is not None else (gen.pipe.vae, "decode", "decode")]
    saved = [(obj, name, obj.__dict__.get(name, _MISSING)) for obj, name, _ in patches]
    for obj, name, key in patches:
        setattr(obj, name, Timed(getattr(obj, name), timer, key))
    try:
        yield
    finally:
        for obj, name, old in saved:
            delattr(obj, name) if old is _MISSING else setattr(obj, name, old)


def timed_sample(gen, batch: int, n: int, seed: int = 7) -> dict:
    """Seconds per pair in each stage for ``n`` pairs sampled ``batch`` at a time, and pairs/s."""
    timer: dict = defaultdict(float)
    conds = [Condition(label=("benign", "malignant")[i % 2] if "label" in gen.conditions else None) for i in range(n)]
    out = Path(tempfile.mkdtemp(prefix="speed_"))
    try:
        t0 = time.perf_counter()
        with instrument(gen, timer):
            pairs = gen.sample(seeds=pair_seeds(seed, n), conditions=conds, batch_size=batch)
        t1 = time.perf_counter()
        for i, p in enumerate(pairs):
            write_png(out / f"img_{i}.png", p.image)
            write_png(out / f"mask_{i}.png", p.mask)
        timer["write"] = time.perf_counter() - t1
        total = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    timer["denoise"] = timer.pop("pipe") - timer["decode"]
    timer["other"] = total - sum(timer[k] for k in STAGES if k != "other")
    return {"pairs_per_second": n / total, "seconds_per_pair": {k: timer[k] / n for k in STAGES}}


def flops_per_pair(gen, batch: int = 8) -> dict:
    """FLOPs of one pair at ``batch``: the whole sample, one denoising step and the decode (torch path)."""
    conds = [Condition(label="benign" if "label" in gen.conditions else None)] * batch
    total = count_flops(lambda: gen.sample(seeds=pair_seeds(3, batch), conditions=conds, batch_size=batch)) / batch
    out = {"total": total}
    if gen.name == "bus":
        p = gen.pipe
        x, t = torch.randn(batch, 4, 32, 32), torch.tensor(500)
        text, cond = gen.text(["benign"] * batch), torch.zeros(batch, 1, gen.resolution, gen.resolution)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out["step"] = count_flops(lambda: p._torch_step(x, t, text, cond, 1.0)) / batch
            out["decode"] = count_flops(lambda: p.vae.decode(x)) / batch
    return out


# ----------------------------------------------------------------------------- diffusers reference
def diffusers_pipeline(gen):
    """diffusers' StableDiffusionControlNetPipeline on the bus checkpoint's own modules."""
    from diffusers import StableDiffusionControlNetPipeline

    p = gen.pipe
    pipe = StableDiffusionControlNetPipeline(
        vae=p.vae, text_encoder=None, tokenizer=None, unet=p.unet, controlnet=p.controlnet,
        scheduler=make_scheduler(gen.scheduler, p.scheduler.config), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def diffusers_images(dpipe, gen, masks: torch.Tensor, text: torch.Tensor, seeds, bf16: bool) -> torch.Tensor:
    """Images in [-1, 1] for the same masks, prompt embeddings and seeds as BusPipeline gets."""
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = dpipe(prompt_embeds=text, image=masks * 2 - 1, height=gen.resolution, width=gen.resolution,
                    num_inference_steps=gen.steps, guidance_scale=1.0, controlnet_conditioning_scale=gen.control_scale,
                    generator=gens, output_type="pt").images
    return out.float().mean(1, keepdim=True) * 2 - 1


def masks_and_text(gen, seeds):
    conds = [gen.masks.complete([Condition(label=("benign", "malignant")[i % 2])], int(s))[0]
             for i, s in enumerate(seeds)]
    gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    masks = (gen.masks.pipe([c.label for c in conds], [c.box for c in conds], generator=gens,
                            output_size=gen.resolution) > 0.5).float()
    prompts = [gen.prompt(m[0].numpy(), c.label, int(s)) for m, c, s in zip(masks, conds, seeds)]
    return masks, gen.text(prompts)


def versus_diffusers(gen, dpipe, batch: int, reps: int = 2) -> dict:
    """Seconds per pair of the images-from-(masks, prompts) part: synthaug's pipe (its engine) vs diffusers."""
    seeds = pair_seeds(11, batch)
    masks, text = masks_and_text(gen, seeds)
    gens = lambda: [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]  # noqa: E731
    ours = lambda: gen.pipe(masks, text, guidance_scale=1.0, num_inference_steps=gen.steps,  # noqa: E731
                            scheduler=gen.scheduler, generator=gens(), control_scale=gen.control_scale,
                            engine=gen.runner)
    runs = (("synthaug", ours), ("diffusers_bf16", lambda: diffusers_images(dpipe, gen, masks, text, seeds, True)),
            ("diffusers_fp32", lambda: diffusers_images(dpipe, gen, masks, text, seeds, False)))
    res = {f"{name}_image": to_uint8(fn()).astype(int) for name, fn in runs}  # also the warm-up
    for _ in range(reps):  # interleaved, best of reps: a load change hits all three alike
        for name, fn in runs:
            res[name] = min(res.get(name, np.inf), _seconds(fn) / batch)
    diff = {k: int(np.abs(res.pop(f"{k}_image") - res["synthaug_image"]).max()) for k in ("diffusers_bf16", "diffusers_fp32")}
    res.pop("synthaug_image")
    res["max_grey_difference"] = diff
    res["speedup_vs_best_diffusers"] = min(res["diffusers_bf16"], res["diffusers_fp32"]) / res["synthaug"]
    return res


# ----------------------------------------------------------------------------- sections
def section_grid(args) -> dict:
    rows, peaks = [], {}
    for threads in args.threads:
        peaks[threads] = {"bf16": matmul_peak(threads), "fp32": matmul_peak(threads, torch.float32, reps=3)}
        print("peak", threads, peaks[threads], flush=True)
    flops = {}
    for model, engine in (("bus", "torch"), ("bus", "openvino"), ("pig", "torch")):
        for threads in args.threads:
            torch.set_num_threads(threads)
            gen = create_generator(model, engine=engine, threads=threads)
            if (model, "torch") not in flops and engine == "torch":
                flops[model, "torch"] = flops_per_pair(gen)
            dpipe = diffusers_pipeline(gen) if model == "bus" and engine == "openvino" else None
            gen.sample(2, batch_size=2)  # warm-up
            for batch in args.batches:
                n = max(batch, 4)
                row = {"model": model, "engine": gen.engine, "threads": threads, "batch": batch, "n": n,
                       "loadavg_1min_before": os.getloadavg()[0], **timed_sample(gen, batch, n)}
                fl = flops[model, "torch"]["total"]
                row["gflop_per_pair"] = fl / 1e9
                row["achieved_gflops"] = fl * row["pairs_per_second"] / 1e9
                row["share_of_bf16_peak"] = row["achieved_gflops"] / peaks[threads]["bf16"]
                if dpipe is not None and batch in args.diffusers_batches:
                    row["versus_diffusers"] = versus_diffusers(gen, dpipe, batch)
                print(json.dumps(row), flush=True)
                rows.append(row)
    return {"peaks_gflops": peaks, "flops_per_pair": {f"{m}": v for (m, _), v in flops.items()}, "grid": rows}


def section_e2e(args) -> dict:
    """``synthaug expand`` per engine against diffusers making the same pairs, in one run."""
    if args.raw is None:
        raise SystemExit("--section e2e needs --raw (a converted BUSI train folder, not expanded)")
    env = {**os.environ, "TQDM_DISABLE": "1"}
    env.pop("OMP_NUM_THREADS", None)  # expand's own default decides
    out, folders = {"expand": {}, "ratio": args.ratio, "raw": str(args.raw)}, {}
    for engine in args.engines:
        work = folders[engine] = Path(tempfile.mkdtemp(prefix="speed_e2e_")) / args.raw.name
        shutil.copytree(args.raw, work)
        cmd = [str(REPO / ".venv/bin/synthaug"), "expand", str(work), "--ratio", str(args.ratio), "--engine", engine, "--json"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        report = json.loads(proc.stdout)
        manifest = json.loads((work / "synthaug_manifest.json").read_text(encoding="utf-8"))
        out["expand"][engine] = {"seconds": seconds, "pairs": report["added"], "engine": manifest["generator"]["engine"],
                                 "threads": sorted({e["threads"] for e in manifest["cases"].values()})[0],
                                 "command": " ".join(cmd[1:]),
                                 "stderr_threads_line": next((ln for ln in proc.stderr.splitlines()
                                                              if ln.startswith("synthaug:")), "")}
        print(engine, out["expand"][engine], flush=True)
    if len(folders) == 2:  # the same cases from both engines: how far apart are their pixels?
        a, b = (sorted((f / "imagesTr").glob("synth_*")) for f in folders.values())
        diff = np.concatenate([np.abs(read_gray(x).astype(int) - read_gray(y).astype(int)).ravel() for x, y in zip(a, b)])
        masks_equal = all(np.array_equal(read_mask(x, threshold=0), read_mask(y, threshold=0)) for x, y in
                          zip(*(sorted((f / "labelsTr").glob("synth_*")) for f in folders.values())))
        out["engines_pixel_difference"] = {"cases": len(a), "max": int(diff.max()), "mean": float(diff.mean()),
                                           "p99": float(np.percentile(diff, 99)), "masks_equal": masks_equal}
        print(out["engines_pixel_difference"], flush=True)
    for f in folders.values():
        shutil.rmtree(f.parent, ignore_errors=True)
    n = out["expand"][args.engines[0]]["pairs"]
    threads = out["expand"][args.engines[0]]["threads"] or 1
    torch.set_num_threads(threads)
    gen = create_generator("bus", engine="torch", threads=threads)
    dpipe = diffusers_pipeline(gen)
    blocks = -(-n // 8)
    for bf16 in [p == "bf16" for p in args.diffusers_precisions]:
        dest = Path(tempfile.mkdtemp(prefix="speed_diffusers_"))
        t0 = time.perf_counter()
        for g in range(blocks):
            seeds = pair_seeds(0, 8, start=8 * g)
            masks, text = masks_and_text(gen, seeds)
            images = to_uint8(diffusers_images(dpipe, gen, masks, text, seeds, bf16))
            for k, (img, m) in enumerate(zip(images, masks)):
                if 8 * g + k < n:
                    write_png(dest / f"img_{8 * g + k}.png", img)
                    write_png(dest / f"mask_{8 * g + k}.png", m[0].to(torch.uint8).numpy())
        key = "diffusers_bf16" if bf16 else "diffusers_fp32"
        out[key] = {"seconds": time.perf_counter() - t0, "pairs": n, "threads": threads,
                    "note": "in-process, model already loaded (startup and loading not counted)"}
        print(key, out[key], flush=True)
        shutil.rmtree(dest, ignore_errors=True)
    best = min(v["seconds"] for k, v in out.items() if k.startswith("diffusers_"))
    out["speedup_vs_best_diffusers"] = {e: best / v["seconds"] for e, v in out["expand"].items()}
    grid = RESULTS / "speed_grid_busi128.json"  # FLOPs counted there (FlopCounterMode is slow), else here
    out["gflop_per_pair"] = (json.loads(grid.read_text())["flops_per_pair"]["bus"]["total"] if grid.is_file()
                             else flops_per_pair(gen)["total"]) / 1e9
    out["bf16_peak_gflops"] = matmul_peak(threads)
    for v in out["expand"].values():
        v["share_of_bf16_peak"] = out["gflop_per_pair"] * v["pairs"] / v["seconds"] / out["bf16_peak_gflops"]
    return out


def worker(engine: str, threads: int) -> None:
    """One threads-section measurement, in its own process (OpenMP reads OMP_WAIT_POLICY at load)."""
    gen = create_generator("bus", engine=engine, threads=threads)
    gen.sample(8, batch_size=8)
    conds = [Condition(label=("benign", "malignant")[i % 2]) for i in range(16)]
    seconds = _seconds(lambda: gen.sample(seeds=pair_seeds(5, 16), conditions=conds, batch_size=8))
    print(json.dumps({"engine": gen.engine, "threads": threads, "pairs_per_second": 16 / seconds}))


def section_threads(args) -> dict:
    from synthaug.threads import free_cores

    rows = []
    for busy in (False, True):
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(1.0 if busy else 0)
            free = free_cores()
            for engine in args.engines:
                for policy in (("PASSIVE", None) if engine == "torch" else ("PASSIVE",)):
                    for threads in (1, 2):
                        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
                        env.update({"TQDM_DISABLE": "1", **({"OMP_WAIT_POLICY": policy} if policy else {})})
                        proc = subprocess.run([sys.executable, __file__, "--worker", engine, str(threads)], env=env,
                                              capture_output=True, text=True)
                        if proc.returncode:
                            raise SystemExit(proc.stderr[-2000:])
                        row = {**json.loads(proc.stdout.strip().splitlines()[-1]), "omp_wait_policy": policy or "default",
                               "beside_busy_job": busy, "free_cores_measured": free}
                        print(json.dumps(row), flush=True)
                        rows.append(row)
        finally:
            if spinner is not None:
                spinner.kill()
                spinner.wait()
    return {"threads": rows}


# ----------------------------------------------------------------------------- report
def markdown(res: dict, note: str) -> str:
    md = [f"# Sampling speed ({note})", ""]
    if "grid" in res:
        md += ["Counted FLOPs per pair (FlopCounterMode, torch path, batch 8): "
               + "; ".join(f"{m}: {v['total'] / 1e9:.1f} GFLOP" + (f" (step {v['step'] / 1e9:.2f}, decode "
                                                                   f"{v['decode'] / 1e9:.2f})" if "step" in v else "")
                           for m, v in res["flops_per_pair"].items()) + ".",
               "Measured matmul peak (GFLOP/s, 2048^3): " + "; ".join(
                   f"{t} thread(s) bf16 {p['bf16']:.0f}, fp32 {p['fp32']:.0f}" for t, p in res["peaks_gflops"].items())
               + f". OMP_WAIT_POLICY: {res['machine'].get('omp_wait_policy') or 'unset (OpenMP default: spin)'}.",
               "", "| model | engine | threads | batch | pairs/s | SCMG mask | prompt | denoising | VAE decode | "
               "writing | other | GFLOP/s | share of bf16 peak | vs diffusers (same batch) |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["grid"]:
            s = r["seconds_per_pair"]
            vs = r.get("versus_diffusers")
            vs = (f"{vs['speedup_vs_best_diffusers']:.2f}x ({vs['synthaug']:.2f} vs {vs['diffusers_bf16']:.2f} bf16 / "
                  f"{vs['diffusers_fp32']:.2f} fp32 s/pair)") if vs else "–"
            md.append(f"| {r['model']} | {r['engine']} | {r['threads']} | {r['batch']} | {r['pairs_per_second']:.2f} | "
                      + " | ".join(f"{s[k]:.3f}" for k in STAGES)
                      + f" | {r['achieved_gflops']:.0f} | {100 * r['share_of_bf16_peak']:.0f}% | {vs} |")
        md += ["", "Stage columns are seconds per pair. The diffusers column times only images from (masks, "
               "prompt embeddings): synthaug's pipeline with its engine against StableDiffusionControlNetPipeline "
               "on the same modules, bf16 autocast and fp32, best of the two.", ""]
    if "expand" in res:
        md += ["| run | pairs | threads | seconds | pairs/s | share of bf16 peak |", "|---|---|---|---|---|---|"]
        for e, v in res["expand"].items():
            md.append(f"| `synthaug expand --ratio {res['ratio']:g} --engine {e}` ({v['engine']}) | {v['pairs']} | {v['threads']} | "
                      f"{v['seconds']:.1f} | {v['pairs'] / v['seconds']:.2f} | {100 * v['share_of_bf16_peak']:.1f}% |")
        for k in [k for k in res if k.startswith("diffusers_")]:
            v = res[k]
            md.append(f"| diffusers StableDiffusionControlNetPipeline ({k[10:]}), same pairs in blocks of 8 | {v['pairs']} | "
                      f"{v['threads']} | {v['seconds']:.1f} | {v['pairs'] / v['seconds']:.2f} | "
                      f"{100 * res['gflop_per_pair'] * v['pairs'] / v['seconds'] / res['bf16_peak_gflops']:.1f}% |")
        md += ["", f"Share of peak: {res['gflop_per_pair']:.1f} GFLOP per pair (counted, torch path) x pairs/s over the "
               f"measured bf16 matmul peak at that thread count ({res['bf16_peak_gflops']:.0f} GFLOP/s)."]
        md += ["", "Speed-up of expand over the fastest diffusers run (expand includes process start, loading and "
               "the OpenVINO compile; diffusers is timed in-process with its model loaded): "
               + ", ".join(f"{e}: {x:.2f}x" for e, x in res["speedup_vs_best_diffusers"].items()) + "."]
        if "engines_pixel_difference" in res:
            d = res["engines_pixel_difference"]
            md.append(f"torch vs OpenVINO expand on the same {d['cases']} cases: grey-level difference max {d['max']}, "
                      f"mean {d['mean']:.3f}, 99th percentile {d['p99']:.0f}; masks identical: {d['masks_equal']}.")
        md.append("")
    if "threads" in res:
        md += ["| engine | threads | OMP_WAIT_POLICY | + one spinning process started by speed.py | cores idle at start "
               "(measured) | pairs/s (16 pairs, batch 8) |", "|---|---|---|---|---|---|"]
        md += [f"| {r['engine']} | {r['threads']} | {r['omp_wait_policy']} | {'yes' if r['beside_busy_job'] else 'no'} | "
               f"{r['free_cores_measured']} | {r['pairs_per_second']:.2f} |" for r in res["threads"]]
        md.append("")
    return "\n".join(md)


DOCS_BEGIN, DOCS_END = "<!-- speed.py:begin (generated by benchmarks/speed.py --docs) -->", "<!-- speed.py:end -->"


def update_docs(doc: Path, names: list[str]) -> None:
    """Regenerate the speed block of ``doc`` from committed results (the markdown of each, headings dropped)."""
    parts = []
    for name in names:
        res = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
        body = [ln for ln in markdown(res, res["machine"]["note"]).splitlines() if not ln.startswith("# ")]
        parts += ["", f"*{res['machine']['note']}* ([{name}](../benchmarks/results/{name}.md), {res['date']}):", *body]
    text = doc.read_text(encoding="utf-8")
    if DOCS_BEGIN not in text or DOCS_END not in text:
        raise SystemExit(f"{doc} has no {DOCS_BEGIN} ... {DOCS_END} block")
    head, rest = text.split(DOCS_BEGIN, 1)
    doc.write_text(head + DOCS_BEGIN + "\n" + "\n".join(parts).strip() + "\n" + DOCS_END + rest.split(DOCS_END, 1)[1],
                   encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--section", action="append", choices=["grid", "e2e", "threads"], default=[])
    ap.add_argument("--threads", type=int, action="append", default=[], help="grid: thread counts (default 1, 2)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 16, 32])
    ap.add_argument("--diffusers-batches", type=int, nargs="+", default=[1, 8, 16, 32])
    ap.add_argument("--engines", nargs="+", default=["torch", "openvino"])
    ap.add_argument("--diffusers-precisions", nargs="+", choices=["bf16", "fp32"], default=["bf16", "fp32"],
                    help="e2e: diffusers runs (bf16 autocast is the faster on bf16 CPUs)")
    ap.add_argument("--raw", type=Path, default=None, help="e2e: converted BUSI train folder (copied, never changed)")
    ap.add_argument("--ratio", type=float, default=0.25)
    ap.add_argument("--note", default="2-core CPU", help="conditions of the run, written into the title")
    ap.add_argument("--name", default="speed_busi128")
    ap.add_argument("--docs", nargs="+", metavar="RESULT", help="only regenerate docs/bus.md's speed block from "
                    "these committed results (e.g. speed_busi128 speed_grid_busi128)")
    ap.add_argument("--remake", metavar="RESULT", help="rewrite results/RESULT.md from its JSON")
    ap.add_argument("--worker", nargs=2, metavar=("ENGINE", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]))
    if args.docs:
        return update_docs(REPO / "docs" / "bus.md", args.docs)
    if args.remake:  # the markdown of a committed result again (after a change of layout), same command stamp
        res = json.loads((RESULTS / f"{args.remake}.json").read_text(encoding="utf-8"))
        (RESULTS / f"{args.remake}.md").write_text(f"{markdown(res, res['machine']['note'])}\n\nProduced by:\n\n"
                                                   f"```\n{res['command']}\n```\n", encoding="utf-8")
        return None
    args.threads = args.threads or [1, 2]
    res = {"machine": {"cores": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "torch": torch.__version__,
                       "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "note": args.note}}
    for section in args.section or ["grid", "e2e", "threads"]:
        res.update({"grid": section_grid, "e2e": section_e2e, "threads": section_threads}[section](args))
    write_results(args.name, res, markdown(res, args.note))


if __name__ == "__main__":
    main()
