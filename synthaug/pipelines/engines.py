"""Inference engines for the BUS denoising loop and VAE decode: torch eager, or OpenVINO.

Why: on CPU the ControlNet + UNet step spends most of its time outside matmuls in torch eager
(about 15-25% of the measured bf16 peak); the same graph compiled by OpenVINO with bf16 inference
precision runs about 2x faster on AMX/AVX-512-BF16 CPUs, and so does the VAE decode (docs/bus.md,
benchmarks/results/speed_*.md).

The exported IR depends only on the checkpoint's weights, so it is cached outside the checkpoint
(a checkpoint folder's content hash keys benchmark banks and expand manifests; nothing may be written
there): ``cache_root()/engines/<checkpoint_hash>/openvino-<version>/{step,decode}.xml``, written
atomically (a temporary folder renamed into place), rebuilt when missing.

OpenVINO is an optional extra (``pip install synthaug[openvino]``, about 180 MB installed); without
it, asking for it gives one warning line and the torch engine. Which engine made the pixels (with
its version) is part of an expansion's identity: bf16 kernels of the two engines round differently
(images within a few grey levels, see ``TOLERANCE_GREY``).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import SynthaugError
from ..paths import cache_root
from ..precision import native_bf16

ENGINES = ("auto", "torch", "openvino")
# Largest grey-level difference accepted between the torch and OpenVINO engines on one pair (both bf16;
# measured on the shipped checkpoint: max 3 levels, mean 0.23 over 130 expand cases; see docs/bus.md).
TOLERANCE_GREY = 8
TOLERANCE_MEAN_GREY = 1.0
_warned: set[str] = set()


def openvino_version() -> str | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    return ov.get_version().split("-")[0]


def check_engine(engine) -> str:
    name = "auto" if engine is None else str(engine)
    if name not in ENGINES:
        raise SynthaugError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return name


def torch_identity(device: str = "cpu") -> str:
    """``torch`` (bf16 autocast) or ``torch-fp32`` where the device has no native bf16 (``synthaug.precision``)."""
    return "torch" if native_bf16(device) else "torch-fp32"


def resolve_engine(engine, device: str = "cpu", supported: tuple[str, ...] = ("torch",)) -> str:
    """The engine identity a call will run with: ``torch``, ``torch-fp32`` (no native bf16 on the device)
    or ``openvino-<version>``, known without loading
    weights (expand compares it with the folder's manifest first). ``auto`` picks OpenVINO on CPU when the
    generator supports it and the package is installed; an explicit ``openvino`` without the package warns
    once and falls back to torch."""
    name = check_engine(engine)
    if name == "torch":
        return torch_identity(device)
    if "openvino" not in supported or not str(device).startswith("cpu"):
        if name == "openvino":
            why = "runs on CPU only" if "openvino" in supported else "is not available for this generator"
            raise SynthaugError(f"engine 'openvino' {why}; use --engine torch")
        return torch_identity(device)
    version = openvino_version()
    if version is None:
        if name == "openvino" and "missing" not in _warned:  # one line on stderr, once per process
            _warned.add("missing")
            print("synthaug: warning: engine 'openvino' asked for but the openvino package is not installed "
                  "(pip install 'synthaug[openvino]'); using the torch engine", file=sys.stderr)
        return torch_identity(device)
    return f"openvino-{version}" + ("" if native_bf16("cpu") else "-fp32")  # its bf16 hint runs f32 there


class _Step(torch.nn.Module):
    """One denoising step: ControlNet residuals into the UNet, as BusPipeline's torch loop does."""

    def __init__(self, unet, controlnet):
        super().__init__()
        self.unet, self.controlnet = unet, controlnet

    def forward(self, x, t, text, cond, scale):
        down, mid = self.controlnet(x, t, encoder_hidden_states=text, controlnet_cond=cond,
                                    conditioning_scale=scale, return_dict=False)
        return self.unet(x, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid, return_dict=False)[0]


class _Decode(torch.nn.Module):
    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return self.vae.decode(z / self.vae.config.scaling_factor, return_dict=False)[0]


class OpenVinoEngine:
    """The step and decode of a BusPipeline compiled by OpenVINO (bf16 inference precision, ``threads``
    inference threads, no core pinning: the machine may be shared)."""

    def __init__(self, pipe, checkpoint_hash: str, threads: int | None = None, cache: Path | None = None):
        import openvino as ov

        from ..models.ldm import vae_factor  # diffusers: only when an engine is built

        self.version = openvino_version()
        self.folder = (cache or cache_root() / "engines") / checkpoint_hash / f"openvino-{self.version}"
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
                  "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
                  "CACHE_DIR": str(self.folder / "compiled")}  # compiled blobs: later loads skip compilation
        unet, text_dim = pipe.unet, pipe.unet.config.cross_attention_dim
        lat, ch = unet.config.sample_size, unet.config.in_channels
        size = lat * vae_factor(pipe.vae)
        hint = pipe.controlnet.config.conditioning_channels  # 2 with the lesion-contrast hint
        step_inputs = (torch.zeros(2, ch, lat, lat), torch.tensor([10]), torch.zeros(2, 8, text_dim),
                       torch.zeros(2, hint, size, size), torch.tensor(1.0))
        self._core, self._config, self._compiled = core, config, {}
        self._models = {
            "step": self._model(ov, "step", _Step(unet, pipe.controlnet), step_inputs,
                                [[-1, ch, lat, lat], [1], [-1, -1, text_dim], [-1, hint, size, size], []]),
            "decode": self._model(ov, "decode", _Decode(pipe.vae),
                                  (torch.zeros(2, pipe.vae.config.latent_channels, lat, lat),),
                                  [[-1, pipe.vae.config.latent_channels, lat, lat]])}

    def _run(self, name: str, inputs: list):
        """Run ``name`` compiled for these exact input shapes: static shapes run the step ~30% faster than
        the dynamic-batch model (measured: 0.060 s against 0.082 s at batch 8, one thread); each shape is
        compiled once per process (sub-second with the compiled-blob cache)."""
        key = (name, *(np.shape(a) for a in inputs))
        if key not in self._compiled:
            model = self._models[name].clone()
            model.reshape({port.any_name: list(np.shape(a)) for port, a in zip(model.inputs, inputs)})
            self._compiled[key] = self._core.compile_model(model, "CPU", self._config)
        return self._compiled[key](inputs)[0]

    def _model(self, ov, name: str, module, example, shapes):
        """The cached IR of ``module``, exported first when missing or unreadable (a damaged cache file is
        rebuilt, never reported as a broken checkpoint)."""
        xml = self.folder / f"{name}.xml"
        if xml.is_file():
            try:
                return ov.Core().read_model(xml)
            except RuntimeError:
                xml.unlink()
        if not xml.is_file():
            self.folder.mkdir(parents=True, exist_ok=True)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings on diffusers' shape checks
                model = ov.convert_model(module.eval(), example_input=example,
                                         input=[ov.PartialShape(s) for s in shapes])
            tmp = Path(tempfile.mkdtemp(dir=self.folder, prefix=f".{name}-"))
            try:
                ov.save_model(model, tmp / xml.name, compress_to_fp16=False)
                os.replace(tmp / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
                os.replace(tmp / xml.name, xml)  # the .xml last: present means complete
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return ov.Core().read_model(xml)

    def step(self, x: torch.Tensor, t, text: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(1).to(torch.int64)
        out = self._run("step", [x.float().numpy(), t.numpy(), text.float().numpy(), cond.float().numpy(),
                                 np.float32(scale)])
        return torch.from_numpy(out.copy())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run("decode", [z.float().numpy()]).copy())
