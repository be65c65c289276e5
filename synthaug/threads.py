"""How many CPU threads a generating command uses.

Why: torch defaults to one OpenMP thread per core. Beside another busy job (a trainer, which is how
people run ``expand``) those threads spin-wait on each other's cores and a run took 9.5x longer than
with one thread (issue 18). So the default is the number of cores idle when the command starts,
measured over a short window of /proc/stat (at least 1), and OpenMP is asked to sleep rather than
spin while waiting (``OMP_WAIT_POLICY=PASSIVE``, set before torch loads unless the user set it).
An explicit ``--threads N`` or ``OMP_NUM_THREADS`` wins. Pixels depend on the count (bf16 kernels block
differently; within 2 grey levels), so it is recorded with the pairs.
"""
from __future__ import annotations

import os
import time

from .errors import SynthaugError


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return values[3] + (values[4] if len(values) > 4 else 0), sum(values[:8])  # (idle + iowait, total)


def free_cores(window: float = 0.3) -> int:
    """Cores idle right now (a /proc/stat window; the 1-minute load average where there is no /proc/stat)."""
    cores = usable_cores()
    first = _cpu_times()
    if first is not None:
        time.sleep(window)
        second = _cpu_times()
        idle, total = second[0] - first[0], second[1] - first[1]
        share = idle / total if total > 0 else 1.0
        busy = (1 - share) * (os.cpu_count() or cores)
    else:
        busy = os.getloadavg()[0]
    return max(1, min(cores, int(cores - busy + 0.5)))


def default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return free_cores()


def prepare_openmp() -> None:
    """Call before torch is imported: waiting OpenMP threads sleep instead of spinning on shared cores."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def use_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to ``threads`` and return the number in use. None leaves torch's setting
    (the Python API does not change a process-wide setting unasked; the commands pass ``default_threads()``)."""
    import torch

    if threads is None:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SynthaugError(f"threads must be an integer >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    return threads
