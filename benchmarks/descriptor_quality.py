"""Are generated lesions as hard as real ones? (issue 34) Contrast, descriptors, control, judge, FD/KID.

For every generator (``--generator NAME=CHECKPOINT``, e.g. the first bus checkpoint
and the descriptor one), ``--n`` pairs are sampled with tumour types at the BUSI
train shares and measured the way real lesions are
(``synthaug.models.descriptors``):

- lesion-to-surround contrast (ring 2-8 px outside minus the mask eroded by 2 px):
  10th / 50th / 90th percentiles and the share below 30 grey levels, beside BUSI
  train (518) and STU (42) measured the same way;
- the share of each echogenicity and margin word, as the descriptor rule of the
  checkpoint (or, for a checkpoint without one, of BUSI train) reads the pairs;
- the judge's Dice on the generated pairs against its Dice on held-out real images
  (the benchmarks' judge, ``pig_quality.real_models``: a U-Net trained on the 414-case
  train part only; real reference: the 104 held-out train cases);
- Frechet / kernel distance to the train part (EfficientNet-Lite0 features).

Control (checkpoints trained on descriptor prompts): ``--per-bin`` pairs asked for each
echogenicity word land in that word's contrast range or not (a preview grid per word);
``--per-bin`` pairs asked for each margin word are read as that word by the checkpoint's
rule or not.

A generator spec may carry sampling options after a comma (``NAME=CHECKPOINT,guidance_scale=4``), so
one checkpoint is measured at several text guidances; the default guidance is chosen on these
generated-pair measurements only, never on a downstream test.

    OMP_NUM_THREADS=1 python benchmarks/descriptor_quality.py --generator before=checkpoints/bus-busi-128 \\
        --generator after=checkpoints/bus-desc-busi-128 --generator after-g2=checkpoints/bus-desc-busi-128,guidance_scale=2 \\
        --generator after-g4=checkpoints/bus-desc-busi-128,guidance_scale=4 --n 448 --per-bin 32 --work /work/runs/bench_work
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, busi_sets, sampler_options, stu_set, write_results  # noqa: E402
from benchmarks.pig_quality import real_models  # noqa: E402
from integrations.smp_timm.segmentation import dice_per_case  # noqa: E402
from synthaug import Condition, create_generator  # noqa: E402
from synthaug.data.datasets import PairDataset  # noqa: E402
from synthaug.metrics import frechet_distance, image_features, kernel_distance  # noqa: E402
from synthaug.models.descriptors import (ECHOGENICITY, ISO, MARGIN, MARKED, DescriptorRule,  # noqa: E402
                                         boundary_sharpness, edge_rise, lesion_contrast)
from synthaug.pipelines.base import sample_cases  # noqa: E402
from synthaug.preview import save_grid  # noqa: E402

ECHO_RANGE = {"isoechoic": (-np.inf, ISO), "hypoechoic": (ISO, MARKED), "markedly hypoechoic": (MARKED, np.inf)}


def contrast_row(images, masks) -> dict:
    c = np.array([lesion_contrast(i, m) for i, m in zip(images, masks)])
    c = c[np.isfinite(c)]
    q10, q50, q90 = np.percentile(c, [10, 50, 90])
    return {"n": int(c.size), "q10": float(q10), "median": float(q50), "q90": float(q90),
            "below_30": float(np.mean(c < 30))}


def word_shares(rule: DescriptorRule, images, masks) -> dict:
    words = [rule.describe(i, m) for i, m in zip(images, masks)]
    return {kind: {w: float(np.mean([x[kind] == w for x in words])) for w in vocab}
            for kind, vocab in (("echo", ECHOGENICITY), ("margin", MARGIN))}


def edge_rows(rule: DescriptorRule, images, masks) -> dict:
    """Median ``edge_rise`` (width in px, share at the outline) over all lesions and per margin word as read."""
    words = [rule.describe(i, m)["margin"] for i, m in zip(images, masks)]
    rises = [edge_rise(i, m) for i, m in zip(images, masks)]
    out = {}
    for word in ("all", *MARGIN):
        got = [r for r, w in zip(rises, words) if r and word in ("all", w)]
        out[word] = {"n": len(got), **({k: float(np.nanmedian([r[k] for r in got])) for k in ("width", "at_outline")}
                                       if got else {})}
    return out


def margin_reading(rule: DescriptorRule, pairs) -> dict:
    """The pairs' margins as ``rule`` reads them: the share of each word and the median boundary sharpness."""
    read = [rule.describe(p.image, p.mask) for p in pairs]
    return {"n": len(pairs), "read_as": {w: float(np.mean([r["margin"] == w for r in read])) for w in MARGIN},
            "median_sharpness": float(np.nanmedian([r["sharpness"] for r in read]))}


FOLLOWED = {"contrast": lesion_contrast, "sharpness": boundary_sharpness}  # hint value -> its measure


def following(pairs, what: str = "contrast") -> dict | None:
    """How closely the lesions follow the hint value the sampler asked for (checkpoints with the contrast or
    edge hint record ``contrast_requested`` / ``sharpness_requested``): slope and Pearson r of measured on
    requested, median |error|. A slope of 1 is full control; the percentiles alone cannot tell weak
    control from a narrow draw."""
    req = np.array([p.meta.get(f"{what}_requested", np.nan) for p in pairs], dtype=float)
    got = np.array([FOLLOWED[what](p.image, p.mask) for p in pairs])
    ok = np.isfinite(req) & np.isfinite(got)
    if ok.sum() < 3:
        return None
    slope, intercept = np.polyfit(req[ok], got[ok], 1)
    return {"n": int(ok.sum()), "slope": float(slope), "intercept": float(intercept),
            "median_bias": float(np.median(got[ok] - req[ok])), "r": float(np.corrcoef(req[ok], got[ok])[0, 1]),
            "median_abs_error": float(np.median(np.abs(got[ok] - req[ok])))}


def vae_round_trip(checkpoint: str, images, batch: int = 32) -> list[np.ndarray]:
    """Each image encoded by the checkpoint's VAE (posterior mode) and decoded, as uint8."""
    import torch

    from synthaug.pipelines.loading import load_vae

    vae, out = load_vae(checkpoint).eval(), []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.tensor(np.stack(images[i:i + batch]), dtype=torch.float32)[:, None] / 127.5 - 1
            y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
            out += list(((y[:, 0] + 1) * 127.5).round().numpy().astype(np.uint8))
    return out


def _judge(dice: float | None) -> str:
    return "–" if dice is None else f"{dice:.3f}"


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """``NAME=CHECKPOINT[,key=value...]`` -> (name, checkpoint, sampling options)."""
    name, _, rest = spec.partition("=")
    path, _, opts = rest.partition(",")
    return name, path, sampler_options(opts)


def sample(gen, n: int, seed: int, labels: list[str]) -> list:
    return sample_cases(gen, seed, range(n), lambda k: Condition(label=labels[k]), progress=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generator", action="append", required=True, help="NAME=CHECKPOINT (repeatable)")
    ap.add_argument("--n", type=int, default=448)
    ap.add_argument("--per-bin", type=int, default=32, help="pairs asked for each echogenicity word (control)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--work", type=Path, default=Path("runs/bench_work"), help="the benchmark judges' cache")
    ap.add_argument("--name", default="descriptor_quality_busi128")
    ap.add_argument("--no-judge", action="store_true",
                    help="skip the judge's Dice (its training takes about 40 min on a new machine): a quick look at "
                         "contrast and control only")
    ap.add_argument("--vae-reference", default=None, metavar="CHECKPOINT",
                    help="also measure the real BUSI train images put through this checkpoint's VAE (encode, "
                         "decode): what its latent space can hold, e.g. whether soft margins survive it")
    args = ap.parse_args(argv)
    t0 = time.time()

    sets = busi_sets(size=128)
    full = PairDataset(sets["train"].records + sets["val"].records)
    real_i, real_m, real_l = ([getattr(r, k) for r in full.records] for k in ("image", "mask", "label"))
    busi_rule = DescriptorRule.fit(real_i, real_m, real_l)
    stu = stu_set(128).records
    seg = None if args.no_judge else real_models(args.work, sets, 30, None)[0]  # Dice only
    held_out = float(dice_per_case(seg, sets["val"]).mean()) if seg is not None else None
    real_feats = image_features([r.image for r in sets["train"].records])
    reference = {"busi_train": {**contrast_row(real_i, real_m), **word_shares(busi_rule, real_i, real_m),
                                "edge": edge_rows(busi_rule, real_i, real_m)},
                 "stu": contrast_row([r.image for r in stu], [r.mask for r in stu]),
                 "judge_dice_real_held_out": held_out, "busi_rule": busi_rule.to_dict(),
                 "median_sharpness": float(np.nanmedian([boundary_sharpness(i, m) for i, m in zip(real_i, real_m)]))}
    if args.vae_reference:
        through = vae_round_trip(args.vae_reference, real_i)
        reference["busi_train_through_vae"] = {"checkpoint": args.vae_reference, **contrast_row(through, real_m),
                                               **word_shares(busi_rule, through, real_m),
                                               "edge": edge_rows(busi_rule, through, real_m),
                                               "median_sharpness": float(np.nanmedian(
                                                   [boundary_sharpness(i, m) for i, m in zip(through, real_m)]))}
    print(reference, flush=True)
    share_malignant = np.mean([lab == "malignant" for lab in real_l])
    labels = list(np.where(np.random.default_rng(args.seed).random(args.n) < share_malignant, "malignant", "benign"))

    rows, previews = [], {}
    for spec in args.generator:
        name, path, options = parse_spec(spec)
        gen = create_generator(path, **options)
        t1 = time.time()
        pairs = sample(gen, args.n, args.seed, labels)
        secs = time.time() - t1
        images, masks = [p.image for p in pairs], [p.mask.astype(bool) for p in pairs]
        ds = PairDataset([(p.image, p.mask, p.meta.get("label"), f"gen_{i}") for i, p in enumerate(pairs)], size=128)
        rule = getattr(gen, "descriptor_rule", None)
        feats = image_features(images)
        row = {"generator": name, "checkpoint": path, "options": options, "descriptor_prompts": rule is not None, "seconds": round(secs, 1),
               **contrast_row(images, masks), **word_shares(rule or busi_rule, images, masks),
               "edge": edge_rows(rule or busi_rule, images, masks),
               "judge_dice": float(dice_per_case(seg, ds).mean()) if seg is not None else None,
               "frechet_distance": frechet_distance(real_feats, feats), "kernel_distance": kernel_distance(real_feats, feats)}
        for what in FOLLOWED:
            if follow := following(pairs, what):
                row[f"{what}_following"] = follow
        if rule is not None:
            row["control"] = {}
            for word in ECHOGENICITY:
                asked = create_generator(path, descriptors={"echo": {word: 1.0}}, **options)
                got = sample(asked, args.per_bin, args.seed + 1, labels[: args.per_bin])
                c = np.array([lesion_contrast(p.image, p.mask) for p in got])
                lo, hi = ECHO_RANGE[word]
                row["control"][word] = {"n": len(got), "in_range": float(np.mean((c >= lo) & (c < hi))),
                                        "median_contrast": float(np.nanmedian(c))}
                previews[f"{name}_{word.replace(' ', '_')}"] = got[:8]
            row["margin_control"], row["sharpness_threshold"] = {}, rule.sharpness_threshold
            for word in MARGIN:
                got = sample(gen.with_descriptors({"margin": {word: 1.0}}), args.per_bin, args.seed + 2,
                             labels[: args.per_bin])
                row["margin_control"][word] = margin_reading(rule, got)
                previews[f"{name}_margin_{word}"] = got[:8]
        rows.append(row)
        print(row, flush=True)

    md = ["| set | contrast 10th pct | median | 90th pct | share below 30 | isoechoic | markedly hypoechoic | "
          "indistinct | irregular | judge Dice | FD | KID |", "|---" * 12 + "|"]
    b = reference["busi_train"]
    md.append(f"| real BUSI train ({b['n']}) | {b['q10']:.0f} | {b['median']:.0f} | {b['q90']:.0f} | {b['below_30']:.0%} | "
              f"{b['echo']['isoechoic']:.0%} | {b['echo']['markedly hypoechoic']:.0%} | {b['margin']['indistinct']:.0%} | "
              f"{b['margin']['irregular']:.0%} | {_judge(reference['judge_dice_real_held_out'])} (held-out 104) | – | – |")
    if v := reference.get("busi_train_through_vae"):
        md.append(f"| real BUSI train through the VAE of `{v['checkpoint']}` | {v['q10']:.0f} | {v['median']:.0f} | "
                  f"{v['q90']:.0f} | {v['below_30']:.0%} | {v['echo']['isoechoic']:.0%} | "
                  f"{v['echo']['markedly hypoechoic']:.0%} | {v['margin']['indistinct']:.0%} | "
                  f"{v['margin']['irregular']:.0%} | – | – | – |")
    s = reference["stu"]
    md.append(f"| STU ({s['n']}) | {s['q10']:.0f} | {s['median']:.0f} | {s['q90']:.0f} | {s['below_30']:.0%} | – | – | – | "
              "– | – | – | – |")
    for r in rows:
        md.append(f"| {r['generator']} ({r['n']} pairs) | {r['q10']:.0f} | {r['median']:.0f} | {r['q90']:.0f} | "
                  f"{r['below_30']:.0%} | {r['echo']['isoechoic']:.0%} | {r['echo']['markedly hypoechoic']:.0%} | "
                  f"{r['margin']['indistinct']:.0%} | {r['margin']['irregular']:.0%} | {_judge(r['judge_dice'])} | "
                  f"{r['frechet_distance']:.1f} | {r['kernel_distance']:.4f} |")
    md += ["", "Edge rise across the outline, median over lesions (all, then by the margin word the rule reads): "
           "px from 10% to 90% of the way from the core (4-8 px inside) to the surround (4-8 px outside), and "
           "the share of the rise in the one step across the outline (`synthaug.models.descriptors.edge_rise`).", "",
           "| set | all | circumscribed | indistinct | irregular |", "|---|---|---|---|---|"]
    edge_sets = [("real BUSI train", b)] + ([("real through the VAE", v)] if v else []) + [(r["generator"], r)
                                                                                          for r in rows]
    for label, rec in edge_sets:
        md.append(f"| {label} | " + " | ".join(
            f"{e['width']:.1f} px, {e['at_outline']:.2f} (n={e['n']})" if e["n"] else "–"
            for e in (rec["edge"][w] for w in ("all", *MARGIN))) + " |")
    for what, fmt in (("contrast", ".0f"), ("sharpness", ".2f")):
        follows = [r for r in rows if f"{what}_following" in r]
        if follows:
            md += ["", f"{what.capitalize()} asked for (drawn from training lesions of the type and word) against "
                   f"{what} measured, over the pairs above (bias: median of measured minus asked):", "",
                   "| generator | slope | r | median bias | median abs. error |", "|---|---|---|---|---|"]
            md += [f"| {r['generator']} | {f['slope']:.2f} | {f['r']:.2f} | {f['median_bias']:+{fmt}} | "
                   f"{f['median_abs_error']:{fmt}} |" for r in follows for f in [r[f'{what}_following']]]
    for r in rows:
        if "control" in r:
            md += ["", f"Control, `{r['generator']}`: {args.per_bin} pairs asked for each echogenicity word.", "",
                   "| asked | contrast range | landed in range | median contrast |", "|---|---|---|---|"]
            for word, c in r["control"].items():
                lo, hi = ECHO_RANGE[word]
                md.append(f"| {word} | {lo:g} to {hi:g} | {c['in_range']:.0%} | {c['median_contrast']:.0f} |")
    vae = reference.get("busi_train_through_vae")
    vae_note = f", {vae['median_sharpness']:.2f} through the VAE" if vae else ""
    for r in rows:
        if "margin_control" in r:
            md += ["", f"Margin control, `{r['generator']}`: {args.per_bin} pairs asked for each margin word, read by "
                   "the checkpoint's rule (irregular: outline curvature; indistinct: boundary sharpness below "
                   f"{r.get('sharpness_threshold', busi_rule.sharpness_threshold):.2f}; real BUSI train median "
                   f"sharpness {reference['median_sharpness']:.2f}{vae_note}).", "",
                   "| asked | read circumscribed | read indistinct | read irregular | median sharpness |",
                   "|---|---|---|---|---|"]
            md += [f"| {word} | " + " | ".join(f"{c['read_as'][w]:.0%}" for w in MARGIN) +
                   f" | {c.get('median_sharpness', float('nan')):.2f} |" for word, c in r["margin_control"].items()]
    md += ["", f"Types drawn at the BUSI train shares (seed {args.seed}); the same types for every generator. Contrast: "
           "mean grey level of a ring 2-8 px outside the mask minus the mean inside the mask eroded by 2 px (128 px). "
           "Words of the real rows and of a checkpoint without descriptor prompts: the rule fitted on BUSI train. Judge: "
           f"U-Net trained on the {len(sets['train'])}-case train part only. Wall time {time.time() - t0:.0f} s "
           "with `OMP_NUM_THREADS=1` beside other jobs."]
    for key, pairs in previews.items():
        save_grid(RESULTS / f"{args.name}_{key}.png", [p.image for p in pairs], [p.mask for p in pairs])
    write_results(args.name, {"reference": reference, "rows": rows, "n": args.n, "per_bin": args.per_bin},
                  "\n".join(md))


if __name__ == "__main__":
    main()
