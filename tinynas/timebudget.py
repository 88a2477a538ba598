"""Time budgets: `tinynas run --time 10m` says how much compute a run may spend.

The rule (also in the run report): with a time budget (`run.time`, set by
`--time` or by the small/medium/large preset) every training stage counts
nothing in epochs. It measures its own throughput on a few probe steps
(counted in the budget), then plans its step count so that it ends at its
share's deadline; the cosine learning-rate schedule (warm-up + decay) spans
exactly those planned steps, and a hard deadline checked every step stops it
cleanly if the machine slows down. The search sizes its candidate count from
the measured seconds per candidate and stops evaluating at its deadline,
keeping time for re-ranking the finalists. `train.epochs`, `finetune.epochs`
and `search.candidates` are then ignored. Set any of them explicitly (config
file or command line) without a time at the same level or above and the run
uses counts, as before: counts or a clock, never both.

Shares (`[time]`) split what is left of the budget when a stage starts, in
proportion to the shares of that stage and the budgeted stages after it, so
time an earlier stage did not use (or the space stage's seconds) rolls over.
Export and profile run outside the budget; their seconds are recorded apart.

Everything here is plain Python: a `Deadline` is a value passed down to the
code that must respect it, never a global clock.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from .errors import UserError

EXAMPLE = "e.g. 90s, 10m, 1h or 2h30m"
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
SAFETY = 0.95  # plans aim at 95% of the time left: throughput drifts, the hard stop is the backstop


def parse_duration(text: str | float | int) -> float:
    """Seconds in `text`: "90s", "10m", "1h", "2h30m", "1h5m30s" or a bare number of seconds.

    Units go largest first, each at most once, so "30m2h" (probably a typo)
    is refused rather than guessed at. Empty, zero and negative durations
    are refused too: a budget of nothing cannot run anything.
    """
    if isinstance(text, bool):
        raise UserError(f"time {text!r} is not a duration; {EXAMPLE}")
    if isinstance(text, (int, float)):
        return _positive(float(text), str(text))
    s = str(text).strip().lower().replace(" ", "")
    if not s:
        raise UserError(f"time is empty; give a duration, {EXAMPLE}")
    try:
        return _positive(float(s), text)
    except ValueError:
        pass
    return _positive(_parse_units(s, text), text)


def _parse_units(s: str, original: str) -> float:
    pos, total, seen = 0, 0.0, ""
    for m in _PART.finditer(s):
        unit = m.group(2)
        if m.start() != pos or unit in seen or (seen and "hms".index(unit) < "hms".index(seen[-1])):
            break
        total += float(m.group(1)) * _UNITS[unit]
        seen += unit
        pos = m.end()
    if pos != len(s) or not seen:
        raise UserError(f"time {original!r} is not a duration; {EXAMPLE}")
    return total


def _positive(seconds: float, original: object) -> float:
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"time {original!r} must be a positive duration; {EXAMPLE}")
    return seconds


def format_duration(seconds: float) -> str:
    """"45s", "3m00s", "1h05m": short enough for a progress line, exact to the second."""
    s = int(round(max(seconds, 0.0)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


@dataclass(frozen=True)
class Deadline:
    """A point in `time.monotonic()` time; immune to wall-clock changes during a long run."""

    at: float

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + float(seconds))

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def sooner(self, seconds: float) -> "Deadline":
        """This deadline moved `seconds` earlier: time kept back for work that follows."""
        return Deadline(self.at - max(0.0, float(seconds)))


def plan_steps(available_s: float, step_s: float, steps_per_epoch: int, per_epoch_s: float = 0.0,
               min_steps: int = 1) -> int:
    """How many steps fit in SAFETY x `available_s`, each epoch also paying `per_epoch_s` (eval, checkpoint).

    At least `min_steps`, so a tiny budget still trains a little (the hard
    deadline then stops it); the LR schedule is sized from this number.
    """
    usable = max(0.0, available_s * SAFETY)
    per_step = max(step_s, 1e-6) + per_epoch_s / max(steps_per_epoch, 1)
    return max(min_steps, int(usable / per_step))


def allot(remaining_s: float, shares: Mapping[str, float], stage: str, order: Sequence[str],
          first: str | None = None) -> float:
    """The seconds `stage` gets now: its share of what is left, among itself and the budgeted stages after it.

    Recomputing from what is left is what rolls unspent time over (and takes
    an overrun out of the later stages instead of the total). With `first`
    (an earlier stage, not yet run) it is a forecast: what `stage` will get
    if every stage from `first` on spends exactly its share.
    """
    later = list(order)[list(order).index(stage if first is None else first):]
    weight = sum(shares[s] for s in later)
    return max(0.0, remaining_s) * shares[stage] / weight if weight > 0 else max(0.0, remaining_s)


@dataclass
class Spend:
    """Seconds one stage has spent, including what interrupted earlier runs of it spent (`before`)."""

    before: float = 0.0
    start: float = 0.0

    @classmethod
    def starting_now(cls, before: float = 0.0) -> "Spend":
        return cls(before=float(before), start=time.monotonic())

    def spent(self) -> float:
        return self.before + time.monotonic() - self.start


def plan_line(stage: str, steps: int, images_per_s: float, seconds: float) -> str:
    """The one line a user sees before a long stage: what it will do and why."""
    return f"{stage}: {steps} steps planned from {images_per_s:.0f} img/s for {format_duration(seconds)}"


@dataclass
class TimePlan:
    """A training stage's plan under a budget, and what it spent: the figures the report shows.

    `budget_s` is what the stage was given (its planned seconds), `planned_steps`
    what the measured `step_s` says fits in it; `spend` runs from the stage's start.
    """

    budget_s: float
    spend: Spend
    planned_steps: int = 0
    step_s: float = 0.0
    images_per_s: float = 0.0
    replans: int = 0  # times the step count was moved at an epoch's end (measured speed drifted)

    def record(self, history: Sequence[Mapping] | None = None) -> dict:
        hist = list(history or [])
        return {"budget_s": round(self.budget_s, 2), "planned_s": round(self.budget_s, 2),
                "spent_s": round(self.spend.spent(), 2), "planned_steps": int(self.planned_steps),
                "steps": int(sum(h.get("steps", 0) for h in hist)), "step_s": round(self.step_s, 5),
                "images_per_s": round(self.images_per_s, 1), "replans": self.replans,
                "stopped_at_deadline": any(h.get("stopped_at_deadline") for h in hist)}
