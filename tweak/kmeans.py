"""Choosing k for KMeans: the elbow of the WCSS curve, or the silhouette where the curve has no clear knee.

The harness measures the curve on the script's own data (inertia and silhouette for k = 2..10); this
module only decides, so the rule is testable on numbers alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from kneed import KneeLocator

# The elbow is trusted when the clustering it gives is nearly as well separated as the best one.
SILHOUETTE_TOLERANCE = 0.9


@dataclass(frozen=True)
class KChoice:
    k: int
    rule: str  # "elbow" or "silhouette"
    reason: str


def choose_k(ks: list[int], inertias: list[float], silhouettes: list[float]) -> KChoice:
    if not ks or len(ks) != len(inertias) or len(ks) != len(silhouettes):
        raise ValueError(
            f"the curve needs as many k as values, got {len(ks)}, {len(inertias)}, {len(silhouettes)}"
        )
    best_i = max(range(len(ks)), key=lambda i: silhouettes[i])
    best = KChoice(ks[best_i], "silhouette", "")
    knee = None
    if len(ks) >= 3:
        knee = KneeLocator(ks, inertias, curve="convex", direction="decreasing", S=1.0).knee
    if knee is None:
        return KChoice(
            best.k,
            "silhouette",
            f"the WCSS curve has no knee; silhouette is highest at k={best.k} ({silhouettes[best_i]:.3f})",
        )
    knee_sil = silhouettes[ks.index(int(knee))]
    if knee_sil < SILHOUETTE_TOLERANCE * silhouettes[best_i]:
        return KChoice(
            best.k,
            "silhouette",
            f"the knee at k={knee} is not clear (silhouette {knee_sil:.3f} against "
            f"{silhouettes[best_i]:.3f} at k={best.k})",
        )
    return KChoice(int(knee), "elbow", f"the WCSS curve bends at k={knee} (silhouette {knee_sil:.3f})")
