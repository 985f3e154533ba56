"""The training run's memory budget (RPSQUEST_TRAINER_MEMORY_MB), checked between the steps of a cycle."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass


class MemoryBudgetExceeded(RuntimeError):
    """The run has used more memory than its budget: it stops before the next step."""


def peak_rss_mib() -> float:
    """The most resident memory this process has used so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass(frozen=True)
class MemoryBudget:
    limit_mib: int

    def check(self, step: str) -> None:
        """Raise MemoryBudgetExceeded when the peak so far is over the budget, naming the step that got there."""
        used = peak_rss_mib()
        if used > self.limit_mib:
            raise MemoryBudgetExceeded(
                f"training stopped after {step}: it used {used:.0f} MiB, over the budget of {self.limit_mib} MiB"
                " (RPSQUEST_TRAINER_MEMORY_MB); shorten RPSQUEST_TRAINING_WINDOW_DAYS or raise the budget"
            )
