"""Which generator, sampler steps, engine and gate make an expansion's pixels: its identity in the manifest."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import SynthaugError
from ..gate import cached_judge, judge_for
from ..io.manifest import Folder
from ..models.descriptors import parse_mix
from ..pipelines.base import MICRO_BATCH, check_steps, checkpoint_hash
from ..pipelines.engines import check_engine, resolve_engine
from ..pipelines.registry import create_generator, resolve_checkpoint


@dataclass
class GeneratorRef:
    """The generator a call asks for, identified without loading its weights (loading is slow
    and only needed when a case must actually be generated)."""

    path: Path
    identity: dict  # name, checkpoint_hash, steps, micro_batch, engine: what decides the generated pixels
    fields: frozenset  # Condition fields the generator uses
    engines: tuple = ("torch",)  # engines the generator supports

    @classmethod
    def resolve(cls, spec: str | Path, steps: int | None, engine: str | None = None,
                device: str = "cpu") -> "GeneratorRef":
        """``steps`` None means the checkpoint's default, recorded as that number: a run with
        ``--steps 20`` and one without agree when 20 is the default. ``engine`` is recorded as
        resolved (``torch`` or ``openvino-<version>``): the two round differently."""
        steps = check_steps(steps)
        gen_cls, path = resolve_checkpoint(spec)
        effective = steps if steps is not None else gen_cls.checkpoint_default_steps(path)
        identity = {"name": gen_cls.name, "checkpoint_hash": checkpoint_hash(path), "steps": effective,
                    "micro_batch": MICRO_BATCH, "engine": resolve_engine(engine, device, gen_cls.engines)}
        return cls(path, identity, gen_cls.checkpoint_conditions(path), gen_cls.engines)

    def load(self, device: str, threads: int | None = None):
        steps, mix = self.identity["steps"], self.identity.get("descriptors")
        return create_generator(self.path, device=device, engine=self.identity["engine"].split("-")[0],
                                threads=threads, **({"steps": steps} if steps is not None else {}),
                                **({"descriptors": mix} if mix else {}))

    def ask_descriptors(self, descriptors) -> None:
        """A requested BI-RADS word mix (``parse_mix``) is part of the identity: other words, other pixels.
        Only bus checkpoints trained on descriptor prompts take one; the check reads their config."""
        mix = parse_mix(descriptors)
        if not mix:
            return
        if self.identity["name"] != "bus" or not _has_descriptor_rule(self.path):
            raise SynthaugError(f"--descriptor needs a bus checkpoint trained on descriptor prompts; {self.path} "
                                "was trained without them")
        self.identity["descriptors"] = mix


def _has_descriptor_rule(path: Path) -> bool:
    info = json.loads((Path(path) / "synthaug.json").read_text(encoding="utf-8"))
    return bool(info.get("descriptor_rule"))


def _check_engine(folder: Folder, ref: GeneratorRef, asked: str | None, allow_change: bool) -> str | None:
    """Keep one engine per folder (their bf16 kernels round differently). Without an explicit engine a
    folder continues with the one it was expanded with (manifests before engines were recorded: torch);
    another engine is refused unless ``allow_change``. Returns the engine replaced, if any."""
    recorded = {m["generator"].get("engine", "torch") for _, m in folder.manifests()}
    now = ref.identity["engine"]
    if not recorded or recorded == {now}:
        return None
    if check_engine(asked) == "auto" and len(recorded) == 1:
        (was,) = recorded
        if was.split("-")[0] in ref.engines and was == resolve_engine(was.split("-")[0], "cpu", ref.engines):
            ref.identity["engine"] = was
            return None
    was = ", ".join(sorted(recorded))
    if not allow_change:
        first = sorted(recorded)[0]
        base = first.split("-")[0]
        how = (f"It used {base} bf16 kernels, which this CPU does not run natively: set SYNTHAUG_BF16=1 to "
               "continue exactly (slow)" if resolve_engine(base, "cpu", ref.engines) == first + "-fp32"
               else f"Pass --engine {base} to continue")
        raise SynthaugError(f"{folder.root} was expanded with engine {was} and this call would use {now}; their "
                            f"pixels differ by a few grey levels, so one folder would mix them. {how}, "
                            f"--allow-engine-change to mix them, or `synthaug revert {folder.root}` first")
    return was


def _gate_identity(folder: Folder, ref: GeneratorRef, gate, dry_run: bool) -> Path | None:
    """Put the gate (threshold, tries, judge hash) in the generator identity: other pixels, another
    expansion. The judge is the folder's cached one, trained now if missing (a dry run never trains:
    it then takes the judge an earlier expansion recorded)."""
    dice, judge, tries = gate
    path = Path(judge) if judge else (cached_judge(folder.root) if dry_run else judge_for(folder.root))
    recorded = [m["generator"].get("gate", {}).get("judge") for _, m in folder.manifests()]
    identity = checkpoint_hash(path) if path else next((r for r in recorded if r), "not trained yet")
    ref.identity["gate"] = {"dice": float(dice), "tries": int(tries), "judge": identity}
    return path
