"""How much CPU time *other* processes took while a measurement ran.

Decision: on a machine with few cores, one busy core slows a multi-threaded
run several times over (llama.cpp's threads, for one, meet at a barrier after
every operation), so figures measured while something else ran must be
flagged. :func:`watch_contention` measures machine-wide busy CPU time minus
this process's own and that of its joined children: fresh-process trials
count as ours, so only unrelated work is left.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import psutil


@dataclass
class Contention:
    """CPU time other processes used while a measurement ran (filled in when the block ends)."""

    wall_s: float = math.nan
    other_cpu_s: float = math.nan  # machine-wide busy CPU time minus this process and its reaped children
    logical_cores: int = 0

    @property
    def other_cores(self) -> float:
        """Average number of cores busy with other work."""
        return self.other_cpu_s / self.wall_s if self.wall_s > 0 else math.nan

    def format(self) -> str:
        return (f"other processes kept {self.other_cores:.2f} of {self.logical_cores} logical cores busy "
                f"on average over {self.wall_s:.0f} s")


def _busy_cpu_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_cpu_s() -> float:
    own = psutil.Process().cpu_times()
    return own.user + own.system + own.children_user + own.children_system


@contextlib.contextmanager
def watch_contention():
    """``with watch_contention() as c: ...`` then ``c.other_cores``.

    Fresh-process trials count as ours once they are joined (their CPU time lands
    in ``children_*``), so only unrelated work is left in ``other_cpu_s``.
    """
    result = Contention(logical_cores=psutil.cpu_count() or 1)
    busy, own, start = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    yield result
    result.wall_s = time.perf_counter() - start
    result.other_cpu_s = max(0.0, (_busy_cpu_s() - busy) - (_own_cpu_s() - own))
