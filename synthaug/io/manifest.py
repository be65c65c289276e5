"""The expansion manifest: what ``synthaug expand`` added to a raw folder and how to undo it.

``synthaug_manifest.json`` lives in the dataset folder next to dataset.json. It
records the generator identity (name, checkpoint hash, sampler steps), the
base seed, ratio and name prefix, the real case ids, the ORIGINAL dataset.json
bytes (and splits_final.json, if expand replaced one) so ``revert`` restores
them exactly, and every synthetic case: ``cases`` holds finished ones (seed,
conditions, size, sha256 of both files), ``pending`` those whose files may be
half written. Consumers that only want the finished cases read ``cases``.

A checksum over the content catches hand edits: a manifest that no longer
describes the folder would make resume or revert delete or keep the wrong files.

Shards write the same structure to ``synthaug_manifest.shard-I-of-N.json`` so
concurrent shard processes never write one file; an unsharded run merges them.

``Folder`` reads a raw folder together with its manifests and answers which
cases are real and which synthetic; it is the only place that deletes files,
and it deletes nothing but names a manifest lists. The checksum is unkeyed, so
a manifest is also cross-checked (every listed name carries its prefix, no real
case does, the prefix is the one synthaug picks for those real cases), and
``Folder.delete`` checks every name before it deletes the first file.

``folder_lock`` (``synthaug.io.locks``, re-exported here) serialises the processes that change one raw folder.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import SynthaugError
from .images import sha256_file, write_bytes
from .locks import LOCK_NAME, LOCK_TIMEOUT, folder_lock, shard_lock_name  # noqa: F401  (re-exported)
from .nnunet_raw import DATASET_JSON, RawDataset

MANIFEST_NAME = "synthaug_manifest.json"
FORMAT = "synthaug-expand-manifest"
VERSION = 1
_PART_RE = re.compile(r"synthaug_manifest\.shard-(\d+)-of-(\d+)\.json")
# what must agree between the manifest and a call before synthetic cases can be reused
IDENTITY_KEYS = ("generator", "seed", "prefix", "real_cases")


def part_name(shard: tuple[int, int]) -> str:
    i, n = shard
    return f"synthaug_manifest.shard-{i}-of-{n}.json"


def part_paths(root: Path) -> list[Path]:
    """Shard part files in ``root``."""
    return sorted(p for p in root.glob("synthaug_manifest.shard-*-of-*.json") if _PART_RE.fullmatch(p.name))


def encode_bytes(data: bytes) -> str:
    """Files kept for an exact restore are stored base64: any bytes, any encoding, survive JSON."""
    return base64.b64encode(data).decode("ascii")


def decode_bytes(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _checksum(content: dict) -> str:
    body = {k: v for k, v in content.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_manifest(*, generator: dict, seed: int, ratio: float, prefix: str, real_cases: list[str],
                 dataset_json_bytes: bytes, shard: tuple[int, int] | None = None) -> dict:
    """A manifest with no synthetic cases yet; ``dataset_json_bytes`` is kept to restore exactly."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "generator": generator,
        "seed": int(seed),
        "ratio": float(ratio),
        "prefix": prefix,
        "shard": list(shard) if shard else None,
        "real_cases": list(real_cases),
        "original_dataset_json": encode_bytes(dataset_json_bytes),
        "original_dataset_json_sha256": hashlib.sha256(dataset_json_bytes).hexdigest(),
        "splits_backup": None,
        "cases": {},
        "pending": {},
    }


def load_manifest(path: Path) -> dict | None:
    """The manifest at ``path`` (None when absent), refusing unknown formats and hand edits."""
    if not path.is_file():
        return None
    try:
        m = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SynthaugError(f"{path} is not valid JSON ({e}); the manifest was edited by hand or truncated. "
                            "Restore it from a backup: synthaug cannot resume or revert without it") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise SynthaugError(f"{path} is not a synthaug expansion manifest")
    if m.get("version") != VERSION:
        raise SynthaugError(f"{path} has manifest version {m.get('version')}; this synthaug reads version {VERSION}")
    if m.get("checksum") != _checksum(m):
        raise SynthaugError(f"{path}: manifest was edited by hand; its checksum no longer matches. Undo the edit "
                            "(synthaug relies on it to resume and to revert), or restore dataset.json from "
                            "its 'original_dataset_json' and delete the synthetic cases yourself")
    _check_consistent(m, path)
    return m


def _check_consistent(m: dict, path: Path) -> None:
    """The checksum is unkeyed: anyone can recompute it. So a manifest must also agree with itself
    before anything is deleted on its word: listed names carry its prefix, real cases never do,
    and the prefix is the one synthaug picks for those real cases."""
    prefix, real = m.get("prefix"), m.get("real_cases")
    if not isinstance(prefix, str) or not isinstance(real, list) or prefix != choose_prefix(real):
        raise SynthaugError(f"{path}: prefix {prefix!r} is not the one synthaug picks for its real cases; the "
                            "manifest was edited or forged, so synthaug will not delete anything on its word. "
                            "Restore it from a backup")
    pattern, real_set = name_re(prefix), set(real)
    listed = [n for key in ("cases", "pending") for n in (m.get(key) or {})]
    bad = sorted(n for n in listed if n in real_set or not pattern.fullmatch(n))
    if bad:
        raise SynthaugError(f"{path} lists {', '.join(bad[:5])} as synthetic, but only names {prefix}NNNNN that "
                            "are no real case can be: the manifest was edited or forged, nothing was deleted. "
                            "Restore it from a backup")


def save_manifest(path: Path, manifest: dict) -> bool:
    """Atomically write ``manifest`` with its checksum; skipped (False) when the file already holds it."""
    manifest["checksum"] = _checksum(manifest)
    data = (json.dumps(manifest, indent=1) + "\n").encode()
    return write_if_changed(path, data)


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` atomically unless ``path`` already holds exactly it: reruns leave mtimes alone."""
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes(path, data)
    return True


def check_identity(manifest: dict, expected: dict, path: Path) -> None:
    """A call may only continue an expansion made with the same generator, seed and real cases."""
    for key in IDENTITY_KEYS:
        if manifest.get(key) != expected[key]:
            what = {"generator": "generator/checkpoint/steps", "real_cases": "set of real cases"}.get(key, key)
            was, now = manifest.get(key), expected[key]
            detail = f" ({was} vs now {now})"
            if key == "real_cases":
                added, gone = sorted(set(now) - set(was or [])), sorted(set(was or []) - set(now))
                detail = "".join([f"; added since: {', '.join(added[:5])}" if added else "",
                                  f"; missing now: {', '.join(gone[:5])}" if gone else ""])
            raise SynthaugError(f"{path.parent} was expanded with a different {what}{detail}; run `synthaug revert "
                                f"{path.parent}` first, then expand again")


# ----------------------------------------------------------------------------- a raw folder and its manifests
DEFAULT_PREFIX = "synth_"


def choose_prefix(real_cases: list[str]) -> str:
    """``synth_``, or ``synth1_``, ``synth2_``... when a real case id already starts with it."""
    prefix, k = DEFAULT_PREFIX, 0
    while any(c.startswith(prefix) for c in real_cases):
        k += 1
        prefix = f"synth{k}_"
    return prefix


@dataclass
class Folder:
    """A raw folder with its manifests: which cases are real, which synthetic, under which prefix."""

    root: Path
    raw: RawDataset
    main: dict | None  # the main manifest, if any
    parts: dict[Path, dict]  # shard part manifests
    real: list[str]
    prefix: str

    @classmethod
    def load(cls, root: str | Path, orphans_ok: bool = False) -> "Folder":
        """Read ``root``; cases named like synthaug's but in no manifest stop here (a lost manifest
        would make them count as real) unless ``orphans_ok`` (``revert --rebuild-manifest``)."""
        root = Path(root)
        main = load_manifest(root / MANIFEST_NAME)
        parts = {p: load_manifest(p) for p in part_paths(root)}
        known = main or next(iter(parts.values()), None)
        prefix = known["prefix"] if known else None
        matcher = name_re(prefix) if prefix else ORPHAN_RE  # with no manifest, look for orphans apart
        try:
            raw = RawDataset.open(root, check_count=False, exclude=lambda c: bool(matcher.fullmatch(c)))
        except SynthaugError:
            if known is None and _any_manifest(root):
                return cls.load(root, orphans_ok)
            raise
        if known is None and _any_manifest(root):
            return cls.load(root, orphans_ok)
        if known is None:
            found = orphans(root, raw.file_ending)
            if found and not orphans_ok:
                raise SynthaugError(
                    f"{root} holds {len(found)} case(s) named like synthaug's synthetic cases "
                    f"({', '.join(found[:3])}{', ...' if len(found) > 3 else ''}) but no {MANIFEST_NAME}: the "
                    "manifest was probably deleted, and they would be taken for real cases. If they are synthetic, "
                    f"run `synthaug revert --rebuild-manifest {root}` to delete them and reset numTraining; if "
                    "they are real, rename them (names synth_NNNNN, synth1_NNNNN... are reserved for synthaug)")
            if found:  # only revert --rebuild-manifest gets here, and it counts cases itself
                real = raw.case_ids()
                return cls(root, raw, None, {}, real, choose_prefix(real))
        if main is None:  # dataset.json is still the original one
            raw.check_count()
        real = raw.case_ids()
        return cls(root, raw, main, parts, real, prefix or choose_prefix(real))

    @property
    def main_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def name(self, k: int) -> str:
        return f"{self.prefix}{k:05d}"

    def files(self, name: str) -> tuple[Path, Path]:
        return self.raw.image_path(name), self.raw.label_path(name)

    def manifests(self) -> list[tuple[Path, dict]]:
        return ([(self.main_path, self.main)] if self.main else []) + list(self.parts.items())

    def listed(self) -> set[str]:
        """Synthetic names any manifest knows of, finished or pending."""
        return {n for _, m in self.manifests() for n in (*m["cases"], *m["pending"])}

    def on_disk(self) -> set[str]:
        pattern = name_re(self.prefix)
        fe = self.raw.file_ending
        found = set()
        for d, suffix in ((self.root / "imagesTr", "_0000" + fe), (self.root / "labelsTr", fe)):
            found |= {p.name[: -len(suffix)] for p in d.iterdir()
                      if p.name.endswith(suffix) and pattern.fullmatch(p.name[: -len(suffix)])}
        return found

    def check_unlisted(self) -> None:
        """Files named like ours but in no manifest were not written by synthaug: never delete them."""
        unlisted = self.on_disk() - self.listed()
        if unlisted:
            raise SynthaugError(f"{self.root} holds case(s) {', '.join(sorted(unlisted)[:5])} named like synthetic "
                                "cases but listed in no synthaug manifest; rename or remove them first")

    def verified(self, entries: dict) -> dict:
        """The finished entries whose files are on disk with their recorded hashes."""
        def ok(e, name):
            img, lab = self.files(name)
            return (img.is_file() and lab.is_file() and sha256_file(img) == e["image_sha256"]
                    and sha256_file(lab) == e["label_sha256"])

        return {n: e for n, e in entries.items() if ok(e, n)}

    def delete(self, names, temporaries: bool = True) -> int:
        """Delete synthetic cases (highest index first) and, unless a shard runs, temporaries that
        killed writes left behind; returns the number of cases that had files.

        Every name is checked before the first file goes: it must carry the prefix, be listed in a
        manifest and be no real case, else nothing is deleted (an explicit check, not an assert,
        which ``python -O`` would strip)."""
        names = sorted(names, key=name_index, reverse=True)
        pattern, listed = name_re(self.prefix), self.listed()
        real = set(self.real) | {c for _, m in self.manifests() for c in m["real_cases"]}
        bad = [n for n in names if not pattern.fullmatch(n) or n in real or n not in listed]
        if bad:
            raise SynthaugError(f"refusing to delete {', '.join(sorted(bad)[:5])} in {self.root}: not a synthetic "
                                f"case synthaug recorded (name {self.prefix}NNNNN, listed in a manifest, not a real "
                                "case); nothing was deleted")
        gone = 0
        for n in names:
            paths = [p for p in self.files(n) if p.exists()]
            for p in paths:
                p.unlink()
            gone += bool(paths)
        if not temporaries:
            return gone
        tmp = re.compile(rf"\.({re.escape(self.prefix)}\d{{5,}}(_0000)?{re.escape(self.raw.file_ending)}"
                         rf"|synthaug_manifest.*\.json|{re.escape(DATASET_JSON)})\..+\.tmp")
        for d in (self.root, self.root / "imagesTr", self.root / "labelsTr"):
            for p in d.iterdir():
                if tmp.fullmatch(p.name):
                    p.unlink()
        return gone

    def preprocessed_dir(self) -> Path | None:
        """Absolute: the path is stored for revert, which may run from another directory."""
        base = os.environ.get("nnUNet_preprocessed")
        return Path(os.path.abspath(base)) / self.root.name if base else None


def _any_manifest(root: Path) -> bool:
    """Did a manifest appear? A concurrent shard writes its part before any case file, so one
    that appeared while the folder was listed means its cases may have been taken for real
    (or broken) ones, and the folder must be read again."""
    return (root / MANIFEST_NAME).exists() or bool(part_paths(root))


# any prefix synthaug may have picked (synth_, synth1_, ...): names it reserves for its cases
ORPHAN_RE = re.compile(r"synth\d*_\d{5,}")


def orphans(root: Path, file_ending: str) -> list[str]:
    """Names in imagesTr/labelsTr that synthaug would have written (found when no manifest lists them)."""
    found = set()
    for d, suffix in ((root / "imagesTr", "_0000" + file_ending), (root / "labelsTr", file_ending)):
        found |= {p.name[: -len(suffix)] for p in d.iterdir()
                  if p.name.endswith(suffix) and ORPHAN_RE.fullmatch(p.name[: -len(suffix)])}
    return sorted(found, key=lambda n: (n.split("_")[0], name_index(n)))


def name_re(prefix: str) -> re.Pattern:
    return re.compile(re.escape(prefix) + r"\d{5,}")


def name_index(name: str) -> int:
    return int(re.search(r"\d+$", name).group())
