"""One writer per raw folder: ``folder_lock`` serialises the synthaug processes that change it.

Unsharded expand, revert and splits hold ``.synthaug.lock`` for their whole run; a shard holds
``.synthaug.shard-i-of-n.lock``. The locks are ``filelock`` (flock) locks, which the kernel drops
when their process dies, so a crash never leaves a folder locked.
"""
from __future__ import annotations

import errno
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import SynthaugError

LOCK_NAME = ".synthaug.lock"
LOCK_TIMEOUT = 10.0  # seconds; SYNTHAUG_LOCK_TIMEOUT overrides it
_FOLDER_NAME_RE = re.compile(r"Dataset\d{3}_.+")


def shard_lock_name(shard: tuple[int, int]) -> str:
    i, n = shard
    return f".synthaug.shard-{i}-of-{n}.lock"


def _lock_timeout() -> float:
    value = os.environ.get("SYNTHAUG_LOCK_TIMEOUT")
    try:
        return LOCK_TIMEOUT if value is None else max(0.0, float(value))
    except ValueError:
        raise SynthaugError(f"SYNTHAUG_LOCK_TIMEOUT={value!r} is not a number of seconds") from None


def _holder(path: Path) -> str:
    """Who holds a lock, from what the holder wrote into its lock file."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"`synthaug {info['command']}` (pid {info['pid']} on {info['host']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another synthaug process"


class _Lock:
    """An exclusive ``filelock`` lock on a file in the raw folder (flock: the kernel drops it when
    its process dies, so a crash never leaves the folder locked). The holder writes its pid into
    the file for the other processes' messages, and removes the file before unlocking so a
    reverted folder holds no trace of synthaug (filelock re-opens the path when the inode it
    waited on was removed)."""

    def __init__(self, path: Path, command: str):
        self.path, self.command, self.lock = path, command, FileLock(str(path))

    def acquire(self, deadline: float, busy: str) -> None:
        while True:
            try:
                self.lock.acquire(timeout=max(0.0, deadline - time.monotonic()), poll_interval=0.05)
            except Timeout:
                raise SynthaugError(f"{busy} is in use by {_holder(self.path)}; waited {_lock_timeout():g} s. Let "
                                    "it finish (or stop it) and run this again; set SYNTHAUG_LOCK_TIMEOUT=<seconds> "
                                    "to wait longer") from None
            if self._locked_path():
                break
            self.lock.release()  # we locked a file the previous holder had just removed: lock the new one
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command}
        try:
            self.path.write_text(json.dumps(info) + "\n", encoding="utf-8")
        except BaseException:
            self.lock.release()
            raise

    def _locked_path(self) -> bool:
        """Does the locked descriptor still name ``path``? (filelock 4 checks this itself; older ones
        do not, and a holder removes the file before unlocking.)"""
        fd = getattr(getattr(self.lock, "_context", None), "lock_file_fd", None)
        if fd is None:
            return True
        try:
            return os.path.samestat(os.fstat(fd), os.stat(self.path))
        except FileNotFoundError:
            return False

    def release(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        finally:
            self.lock.release()


@contextmanager
def folder_lock(root: str | Path, command: str, shard: tuple[int, int] | None = None, read_only: bool = False):
    """Hold the raw folder against other synthaug processes while ``command`` runs.

    Unsharded expand, revert and splits hold ``.synthaug.lock`` for their whole run, and first
    wait for every running shard. A shard (``expand --shard i/n``) holds the folder lock only
    while it registers, then holds ``.synthaug.shard-i-of-n.lock`` alone: shards run in parallel
    with each other (each writes only its own part manifest), never with an unsharded run, and
    never twice the same part. A busy folder is waited for up to SYNTHAUG_LOCK_TIMEOUT seconds
    (default 10), then the call fails with one line naming the holder's pid: a second process
    never changes the folder while another does. ``read_only`` calls (dry runs, splits) go ahead
    unlocked when the folder cannot hold a lock file, since no writer could work there either.
    """
    root = Path(root)
    if not root.is_dir():
        raise SynthaugError(f"raw dataset folder {root} does not exist")
    if not _FOLDER_NAME_RE.fullmatch(root.name):  # no lock file in a folder that is no dataset
        raise SynthaugError(f"{root.name!r} is not an nnU-Net v2 raw dataset folder name "
                            "(expected DatasetNNN_Name, e.g. Dataset501_BUSI)")
    deadline = time.monotonic() + _lock_timeout()
    main, held = _Lock(root / LOCK_NAME, command), []
    try:
        main.acquire(deadline, str(root))
    except OSError as e:  # a read-only folder or mount, a full disk
        if read_only:
            main = None
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise SynthaugError(f"{root} is not writable ({e.strerror}); nothing was changed. Fix its "
                                "permissions or copy the dataset") from None
        else:
            raise SynthaugError(f"cannot create {main.path} ({e.strerror}); nothing was changed") from None
    if main is None:
        yield
        return
    held.append(main)
    try:
        if shard is None:  # wait for running shards: a finished or killed one holds nothing
            for p in sorted(root.glob(".synthaug.shard-*-of-*.lock")):
                part = _Lock(p, command)
                part.acquire(deadline, f"{root} (shard lock {p.name})")
                part.release()
        else:
            part = _Lock(root / shard_lock_name(shard), f"{command} --shard {shard[0]}/{shard[1]}")
            part.acquire(deadline, f"{root} (shard {shard[0]}/{shard[1]})")
            held.append(part)
            held.remove(main)
            main.release()
        yield
    finally:
        for lock in reversed(held):
            lock.release()
