"""VAE reconstruction quality and speed (issue "BUS generator", Must show).

The latent diffusion can only be as sharp as its autoencoder, so this measures
the round trip (encode to the posterior mean, decode) at 128 px:
- PSNR / SSIM on STU (external, never seen by the VAE) and on the BUSI
  validation part (carved from the train split the VAE was trained on, so
  it is *not* held out from the VAE: reported for comparison only);
- encode and decode seconds per image on this CPU;
- a figure of originals over reconstructions.

    python benchmarks/vae_quality.py --vae checkpoints/bus-busi-128 --name vae_quality_busi128
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import RESULTS, busi_sets, stu_set, write_results  # noqa: E402
from synthaug.metrics import psnr_ssim  # noqa: E402
from synthaug.pipelines.base import to_uint8  # noqa: E402
from synthaug.training.objectives.vae import from_vae, load_vae, reconstruct, to_vae  # noqa: E402


def as_tensor(images) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).float().div(127.5).sub(1).unsqueeze(1)


def as_uint8(x: torch.Tensor) -> list[np.ndarray]:
    return list(to_uint8(x))


@torch.no_grad()
def speed(vae, x: torch.Tensor, batch_size: int = 16) -> dict:
    x = x[:batch_size]
    t0 = time.time()
    z = vae.encode(to_vae(x, vae)).latent_dist.mean
    t1 = time.time()
    from_vae(vae.decode(z).sample)
    t2 = time.time()
    return {"encode_s_per_image": (t1 - t0) / len(x), "decode_s_per_image": (t2 - t1) / len(x),
            "latent_shape": list(z.shape[1:])}


def figure(sets: dict[str, tuple[list, list]], out: Path, n: int = 6) -> Path:
    from synthaug.evaluation.figures import plt

    fig, axes = plt.subplots(2 * len(sets), n, figsize=(1.6 * n, 3.3 * len(sets)))
    for row, (name, (orig, rec)) in enumerate(sets.items()):
        for j in range(n):
            for k, (img, what) in enumerate(((orig[j], "real"), (rec[j], "VAE"))):
                ax = axes[2 * row + k, j]
                ax.imshow(img, cmap="gray", vmin=0, vmax=255)
                ax.set_xticks([]), ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(f"{name.split(' (')[0]}\n{what}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vae", type=Path, required=True, help="a VAE run output or a bus checkpoint folder")
    ap.add_argument("--name", default="vae_quality")
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    vae = load_vae(args.vae).eval()
    evaluated = {"STU (external, unseen)": [r.image for r in stu_set(128).records],
                 "BUSI val part (seen in VAE training)": [r.image for r in busi_sets(128)["val"].records]}
    rows, shown = {}, {}
    for name, images in evaluated.items():
        rec = as_uint8(reconstruct(vae, as_tensor(images)))
        rows[name] = psnr_ssim(images, rec)
        shown[name] = (images, rec)
        print(name, rows[name], flush=True)
    timing = speed(vae, as_tensor(evaluated["STU (external, unseen)"]))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    png = figure(shown, args.results_dir / f"{args.name}.png")
    md = ["| images | n | PSNR (dB) | SSIM |", "|---|---|---|---|"]
    md += [f"| {k} | {r['n']} | {r['psnr']:.2f} ± {r['psnr_std']:.2f} | {r['ssim']:.3f} ± {r['ssim_std']:.3f} |"
           for k, r in rows.items()]
    md += ["", f"128 px, latent {timing['latent_shape']}; encode {timing['encode_s_per_image'] * 1000:.0f} ms, "
               f"decode {timing['decode_s_per_image'] * 1000:.0f} ms per image (batch 16, fp32, this CPU).",
           "", f"![reconstructions]({png.name})"]
    write_results(args.name, {"vae": str(args.vae), "reconstruction": rows, "speed": timing}, "\n".join(md), args.results_dir)


if __name__ == "__main__":
    main()
