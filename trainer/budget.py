"""The training run's memory budget (RPSQUEST_TRAINER_MEMORY_MB), a hard cap on every step of a cycle.

While a step runs, the process's data (its heap and private writable mappings, RLIMIT_DATA) is held to the
budget, so an allocation that would go over it fails there and then; when the step ends, its peak resident
memory (which also counts mapped code) is checked against the same budget. Either way the run stops with
MemoryBudgetExceeded, and the limit is lifted again so that the failure can be recorded.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

ADVICE = "(RPSQUEST_TRAINER_MEMORY_MB); shorten RPSQUEST_TRAINING_WINDOW_DAYS or raise the budget"


class MemoryBudgetExceeded(RuntimeError):
    """The run needed more memory than its budget: it stops in the step that did."""


def peak_rss_mib() -> float:
    """The most resident memory this process has used so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _out_of_memory(exc: Exception) -> bool:
    """Whether `exc` is a refused allocation: Python's MemoryError, or an extension's own error for ENOMEM
    (torch raises RuntimeError "... can't allocate memory ... Cannot allocate memory", C++ code std::bad_alloc)."""
    text = str(exc)
    return isinstance(exc, MemoryError) or "Cannot allocate memory" in text or "bad_alloc" in text


@dataclass(frozen=True)
class MemoryBudget:
    limit_mib: int

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run step `name` within the budget (see the module's docstring)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
        cap = self.limit_mib * 1024 * 1024
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
        failed: Exception | None = None
        try:
            yield
        except Exception as exc:
            failed = exc  # looked at once the cap is lifted: reading it (its message) may need memory too
        finally:
            resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        if failed is not None:
            if not _out_of_memory(failed):
                raise failed
            raise MemoryBudgetExceeded(
                f"training stopped during {name}: an allocation went over the budget of {self.limit_mib} MiB {ADVICE}"
            ) from failed
        used = peak_rss_mib()
        if used > self.limit_mib:
            over = f"it used {used:.0f} MiB, over the budget of {self.limit_mib} MiB"
            raise MemoryBudgetExceeded(f"training stopped after {name}: {over} {ADVICE}")


UNLIMITED = MemoryBudget(1 << 40)  # a mebibyte count no machine reaches
