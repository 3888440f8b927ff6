"""Choosing k for KMeans: the elbow of the WCSS curve, or the silhouette where the curve has no clear knee.

The harness measures the curve on the script's own data (inertia and silhouette for k = 2..10); this
module only decides, so the rule is testable on numbers alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kneed import KneeLocator

from tweak.codemods import SetEstimatorParam

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


def _choices(kmeans: dict[str, Any] | None) -> list[tuple[int, str]]:
    """k values to try, best first: the knee detector's choice, then by silhouette."""
    curve = (kmeans or {}).get("curve") or {}
    ks, inertias, sils = curve.get("k") or [], curve.get("inertia") or [], curve.get("silhouette") or []
    if not ks:
        return []
    choice = choose_k(ks, inertias, sils)
    order = [(choice.k, f"k={choice.k} chosen by the {choice.rule} rule: {choice.reason}")]
    for k, s in sorted(zip(ks, sils, strict=True), key=lambda p: -p[1]):
        if k != choice.k:
            order.append((k, f"k={k}, the next best silhouette ({s:.3f})"))
    return order


def _estimator(facts: Any, kmeans: dict[str, Any] | None) -> str:
    for est in getattr(facts, "estimators", []) or []:
        name = getattr(est, "name", "")
        if name in ("KMeans", "MiniBatchKMeans"):
            return name
    return str((kmeans or {}).get("estimator") or "KMeans")


def next_k(
    facts: Any, kmeans: dict[str, Any] | None, tried_params: list[dict[str, Any]]
) -> tuple[SetEstimatorParam, int, str] | None:
    """The next k to try (the tweak that sets it, k, and why), from the harness's measurements of trial 0
    (``kmeans``); None when every k of the curve was tried."""
    tried = {params.get("n_clusters") for params in tried_params}
    tried.add((kmeans or {}).get("n_clusters"))
    for k, note in _choices(kmeans):
        if k not in tried:
            return (
                SetEstimatorParam(estimators=[_estimator(facts, kmeans)], param="n_clusters", value=k),
                k,
                note,
            )
    return None
