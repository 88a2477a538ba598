"""Which evaluated candidate the search hands back: the cheapest one that is as good as the best.

Accuracy on a finite selection set is noisy: on 162 held-out digits one image
is 0.6 points. Handing back the most accurate candidate, whatever it costs,
often means a model several times larger than one that is equally good within
that noise. With prefer="efficient" (the default) the winner is, among the
candidates whose accuracy is within z binomial standard errors of the best
(`tinynas.stats.binomial_se` on the selection set's size), the one with the
lowest latency, then SRAM, then flash. prefer="accuracy" restores "most
accurate, whatever the cost". The Pareto front stays in search.json so a user
can pick another point.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import UserError
from ..stats import binomial_se

PREFER = ("efficient", "accuracy")


def check_prefer(prefer: str, z: float) -> None:
    if prefer not in PREFER:
        raise UserError(f"prefer {prefer!r}: not one of {', '.join(PREFER)}")
    if not z >= 0:
        raise UserError(f"tie_z {z}: must be >= 0 (standard errors within which accuracies tie)")


def cost_key(c: Mapping[str, Any]) -> tuple[float, float, float]:
    return (float(c["latency_ms"]), float(c["sram_bytes"]), float(c["flash_bytes"]))


def near_best(pool: Sequence[Mapping[str, Any]], n: int, z: float, key: str = "fitness") -> list[dict]:
    """Candidates within z standard errors (on n images) of the best by `key`."""
    if not pool:
        return []
    best = max(float(c[key]) for c in pool)
    margin = z * binomial_se(best, n)
    return [dict(c) for c in pool if best - float(c[key]) <= margin + 1e-12]


def choose_winner(pool: Sequence[Mapping[str, Any]], n: int, prefer: str = "efficient",
                  z: float = 1.0) -> tuple[dict, dict[str, Any]]:
    """(winner, what was decided and why) among candidates scored on the same n images."""
    check_prefer(prefer, z)
    if not pool:
        raise ValueError("choose_winner: no candidates")
    best = max(pool, key=lambda c: (float(c["fitness"]), -cost_key(c)[0]))
    info = {"prefer": prefer, "tie_z": z, "n_images": n, "best_fitness": float(best["fitness"]),
            "standard_error": round(binomial_se(float(best["fitness"]), n), 5),
            "most_accurate": best.get("arch_hash")}
    if prefer == "accuracy":
        return dict(best), {**info, "tied": 1}
    tied = near_best(pool, n, z)
    win = min(tied, key=lambda c: (*cost_key(c), -float(c["fitness"])))
    return win, {**info, "tied": len(tied), "tied_hashes": [c.get("arch_hash") for c in tied]}
