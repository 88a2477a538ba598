"""What a finished stage hands to the stages after it, the summary and the report.

A stage's record used to travel as a nested dict that every reader dug into
with `.get("result", {}).get(...)` chains, so a renamed key failed silently
as None. `StageRecord` names its fields; the stage's own figures stay in
`result` (they differ per stage) and are read with `value`. The record is
also what DIR/<stage>/stage.json holds, so a stage finished in an earlier
invocation comes back as the same object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


@dataclass
class StageRecord:
    """One finished stage: its figures, how long it took, and what the clock had planned for it."""

    stage: str
    wall_s: float
    result: dict[str, Any] = field(default_factory=dict)
    hash: str = ""             # the options it depends on (pipeline.config.stage_hash)
    planned_s: float | None = None
    spent_s: float | None = None
    share: float | None = None
    in_budget: bool | None = None  # None: the run had no time budget

    @property
    def seconds(self) -> float:
        """What the stage cost: the clock's figure where there was one, else wall time."""
        return self.wall_s if self.spent_s is None else self.spent_s

    def value(self, key: str, default: Any = None) -> Any:
        """One of the stage's own figures (space_json, images_per_s, accuracy_supernet, fits, ...)."""
        return self.result.get(key, default)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "StageRecord":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**{"stage": "", "wall_s": 0.0, **known})


Records = dict[str, StageRecord]


def result_value(records: Mapping[str, StageRecord], stage: str, key: str, default: Any = None) -> Any:
    """`key` of `stage`'s figures, `default` when that stage did not run."""
    rec = records.get(stage)
    return default if rec is None else rec.value(key, default)
