"""When a dead training starts again: a pure function of what happened so far (see supervisor.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mlops.domain import TrialStatus
from mlops.trial import RESTARTED, LaunchResult


class Action(enum.Enum):
    FINISH = "finish"
    RESTART = "restart"
    GIVE_UP = "give-up"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    delay_s: float = 0.0


@dataclass(frozen=True)
class RestartPolicy:
    """When to start a dead training again. A pure function of what happened so far."""

    max_restarts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0

    def decide(self, result: LaunchResult, restarts: int) -> Decision:
        if result.status is TrialStatus.SUCCEEDED:
            return Decision(Action.FINISH, "produced its metric")
        if result.failure not in RESTARTED:
            # An exception of the script, a missing module, a timeout: the same code fails the same way.
            what = result.failure.value if result.failure else "failure"
            return Decision(Action.FINISH, f"a {what} failure is not restarted: it would fail the same way")
        if restarts >= self.max_restarts:
            return Decision(Action.GIVE_UP, f"still failing after {restarts} restarts")
        delay = min(self.max_delay_s, self.base_delay_s * (2**restarts))
        return Decision(Action.RESTART, result.error or result.outcome.describe(), delay)
