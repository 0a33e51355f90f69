"""Comparative analytics of territories: clustering, PCA and a composite sustainability index.

Pure computation (no SQL, no HTTP). ``values`` is always an ``n_territories × n_indicators``
matrix, one row per territory (municipality, district, quarter) and one column per indicator.

Conventions:

* Standardisation is the z-score ``(x − mean) / std`` with the population standard deviation
  (ddof = 0, as scikit-learn's ``StandardScaler``). A constant column has no variance, cannot be
  standardised and carries no information for clustering or PCA, so it is refused by name.
* Clustering and PCA leave out rows with a missing value (NaN) and list them in ``excluded``;
  nothing is imputed. The composite index refuses NaN outright, because a missing indicator
  would silently change the meaning of a territory's score.
* The sustainability index follows the min-max method of the OECD/JRC *Handbook on
  Constructing Composite Indicators: Methodology and User Guide* (OECD / EC Joint Research
  Centre, 2008), min-max normalisation and linear aggregation: each indicator is rescaled to
  0..100 over the territories compared, "lower is better" indicators are inverted, and the
  composite is the weighted arithmetic mean with weights reported as used.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from layers.errors import InvalidParameterValue

Matrix = Sequence[Sequence[float]] | np.ndarray
DIRECTIONS = ("higher", "lower")
KMEANS_N_INIT = 10  # fixed so that a given seed always gives the same partition


# ---------------------------------------------------------------- validation helpers


def _matrix(values: Matrix, allow_nan: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"values must be a matrix of numbers: {exc}") from exc
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidParameterValue(
            f"values must be a non-empty matrix (territories × indicators); got shape {arr.shape}"
        )
    if np.isinf(arr).any():
        r, c = np.argwhere(np.isinf(arr))[0]
        raise InvalidParameterValue(f"values contains an infinite number at row {r}, column {c}")
    if not allow_nan and np.isnan(arr).any():
        r, c = np.argwhere(np.isnan(arr))[0]
        raise InvalidParameterValue(f"values contains NaN (missing data) at row {r}, column {c}")
    return arr


def _labels(names: Sequence[Hashable] | None, n: int, what: str, default: str = "") -> list[Hashable]:
    if names is None:
        return [f"{default}{i}" if default else i for i in range(n)]
    out = list(names)
    if len(out) != n:
        raise InvalidParameterValue(f"{what} has {len(out)} entries but values has {n}")
    if len(set(out)) != len(out):
        raise InvalidParameterValue(f"{what} must be unique")
    return out


def _directions(directions: Sequence[str] | None, m: int) -> list[str]:
    if directions is None:
        return ["higher"] * m
    out = list(directions)
    if len(out) != m:
        raise InvalidParameterValue(f"directions has {len(out)} entries but values has {m} indicator columns")
    bad = [d for d in out if d not in DIRECTIONS]
    if bad:
        raise InvalidParameterValue(f"direction must be 'higher' or 'lower'; got {bad[0]!r}")
    return out


def _drop_missing(arr: np.ndarray, ids: list[Hashable]) -> tuple[np.ndarray, list[Hashable], list[Hashable]]:
    """Rows without NaN, their ids, and the ids of the rows left out."""
    missing = np.isnan(arr).any(axis=1)
    kept = [i for i, m in zip(ids, missing, strict=True) if not m]
    excluded = [i for i, m in zip(ids, missing, strict=True) if m]
    return arr[~missing], kept, excluded


# ---------------------------------------------------------------- standardisation


class Standardized(NamedTuple):
    z: np.ndarray  # n × m z-scores, sign flipped for "lower is better" columns
    mean: np.ndarray  # per column, original units
    std: np.ndarray  # per column (ddof = 0), original units


def standardize(
    matrix: Matrix, directions: Sequence[str] | None = None, indicator_names: Sequence[str] | None = None
) -> Standardized:
    """Z-scores per column, ``(x − mean) / std`` with ddof = 0.

    ``directions`` (``"higher"``/``"lower"`` per column) flips the sign of "lower is better"
    columns so that a larger z is always better. A column with zero variance is refused, naming it.
    """
    arr = _matrix(matrix)
    dirs = _directions(directions, arr.shape[1])
    names = _labels(indicator_names, arr.shape[1], "indicator_names", default="column ")
    mean = arr.mean(axis=0)
    std = arr.std(axis=0)
    # Relative tolerance: float noise in a "constant" column must not pass for variance.
    constant = std <= 1e-12 * np.maximum(1.0, np.abs(mean))
    if constant.any():
        which = ", ".join(str(names[j]) for j in np.flatnonzero(constant))
        raise InvalidParameterValue(
            f"indicator(s) {which} have the same value for every territory (zero variance): they carry no "
            f"information and cannot be standardised; remove them",
            constant=[names[j] for j in np.flatnonzero(constant)],
        )
    sign = np.array([1.0 if d == "higher" else -1.0 for d in dirs])
    return Standardized((arr - mean) / std * sign, mean, std)


# ---------------------------------------------------------------- clustering


@dataclass
class ClusterResult:
    ids: list[Hashable]  # territories clustered, in input order
    labels: np.ndarray  # cluster of each id, 0..k-1 numbered by first appearance
    k: int
    silhouette: float  # mean silhouette on the standardised indicators
    centroids: np.ndarray  # k × m, original units (k-means centres, un-standardised)
    sizes: np.ndarray  # territories per cluster
    cluster_means: np.ndarray  # k × m, mean of each indicator over the cluster's members, original units
    excluded: list[Hashable] = field(default_factory=list)  # ids left out for missing values
    silhouette_by_k: dict[int, float] = field(default_factory=dict)  # every k tried (k chosen automatically)

    def members(self, label: int) -> list[Hashable]:
        return [i for i, lab in zip(self.ids, self.labels, strict=True) if lab == label]


def _kmeans(z: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    km = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=seed).fit(z)
    return km.labels_, km.cluster_centers_


def _canonical(labels: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Number clusters by first appearance so the same partition always has the same labels.
    _, first = np.unique(labels, return_index=True)
    order = np.unique(labels)[np.argsort(first)]
    remap = np.empty(labels.max() + 1, dtype=int)
    remap[order] = np.arange(order.size)
    return remap[labels], centres[order]


def _distinct_rows(z: np.ndarray) -> int:
    return int(np.unique(np.round(z, 12), axis=0).shape[0])


def _choose_k(z: np.ndarray, k_range: tuple[int, int], seed: int) -> tuple[int, dict[int, float]]:
    lo, hi = int(k_range[0]), int(k_range[1])
    if lo < 2 or hi < lo:
        raise InvalidParameterValue(f"k_range must be (low, high) with 2 ≤ low ≤ high; got {k_range}")
    n = z.shape[0]
    # The silhouette needs 2 ≤ k ≤ n − 1, and k-means cannot make more clusters than distinct points.
    top = min(hi, n - 1, _distinct_rows(z))
    if top < lo:
        raise InvalidParameterValue(
            f"cannot choose k in {k_range}: only {n} territories with complete data "
            f"({_distinct_rows(z)} distinct); the silhouette needs 2 ≤ k ≤ territories − 1"
        )
    scores = {k: float(silhouette_score(z, _kmeans(z, k, seed)[0])) for k in range(lo, top + 1)}
    best = max(scores, key=lambda k: (scores[k], -k))  # ties go to the smaller, simpler k
    return best, scores


def cluster(
    values: Matrix,
    names: Sequence[Hashable] | None = None,
    k: int | None = None,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    indicator_names: Sequence[str] | None = None,
) -> ClusterResult:
    """K-means clustering of territories on standardised indicators.

    ``names`` are the territory ids (default 0..n-1). Rows with a NaN are left out and listed in
    ``excluded``. With ``k=None`` every k in ``k_range`` (capped at territories − 1) is tried and
    the one with the highest mean silhouette wins (ties: the smaller k). k-means uses
    ``n_init=10`` and ``random_state=seed``, so the result is reproducible.

    Refused: fewer than 3 complete rows, ``k`` < 2 or ``k`` ≥ rows, a constant column
    (named with ``indicator_names`` when given).
    """
    arr = _matrix(values, allow_nan=True)
    ids = _labels(names, arr.shape[0], "names")
    data, kept, excluded = _drop_missing(arr, ids)
    n = data.shape[0]
    if n < 3:
        raise InvalidParameterValue(
            f"clustering needs at least 3 territories with complete data; got {n}"
            + (f" ({len(excluded)} left out for missing values: {excluded})" if excluded else "")
        )
    std = standardize(data, indicator_names=indicator_names)
    scores: dict[int, float] = {}
    if k is None:
        k, scores = _choose_k(std.z, k_range, seed)
    else:
        k = int(k)
        if k < 2 or k >= n:
            raise InvalidParameterValue(f"k must satisfy 2 ≤ k < number of territories ({n}); got {k}")
        if _distinct_rows(std.z) < k:
            raise InvalidParameterValue(f"k = {k} exceeds the {_distinct_rows(std.z)} distinct territories")
    labels, centres = _canonical(*_kmeans(std.z, k, seed))
    silhouette = scores.get(k, float(silhouette_score(std.z, labels)))
    return ClusterResult(
        ids=kept,
        labels=labels,
        k=k,
        silhouette=silhouette,
        centroids=centres * std.std + std.mean,
        sizes=np.bincount(labels, minlength=k),
        cluster_means=np.vstack([data[labels == c].mean(axis=0) for c in range(k)]),
        excluded=excluded,
        silhouette_by_k=scores,
    )


# ---------------------------------------------------------------- PCA


@dataclass
class PCAResult:
    ids: list[Hashable]  # rows used, in input order
    indicator_names: list[str]
    explained_variance_ratio: np.ndarray  # per component, share of the total standardised variance
    components: np.ndarray  # components × indicators, unit eigenvectors of the correlation matrix
    loadings: np.ndarray  # components × indicators, correlation of each indicator with each component
    scores: np.ndarray  # rows × components, coordinates of each territory
    excluded: list[Hashable] = field(default_factory=list)


def _normalise_signs(components: np.ndarray) -> np.ndarray:
    """+1/−1 per component so that its largest absolute coefficient becomes positive."""
    idx = np.abs(components).argmax(axis=1)
    return np.where(components[np.arange(components.shape[0]), idx] < 0, -1.0, 1.0)


def pca(
    values: Matrix,
    indicator_names: Sequence[str],
    n_components: int | None = None,
    ids: Sequence[Hashable] | None = None,
) -> PCAResult:
    """Principal components of the standardised indicators (i.e. PCA of the correlation matrix).

    ``loadings[c, j]`` is the correlation between indicator ``j`` and component ``c``
    (eigenvector × √eigenvalue of the correlation matrix, eigenvalue = ratio × number of indicators).
    Signs of eigenvectors are arbitrary, so each component (its components, loadings and scores)
    is sign-normalised: **the largest absolute loading of every component is positive**.
    Rows with a NaN are left out and listed in ``excluded``; a constant column is refused.
    """
    arr = _matrix(values, allow_nan=True)
    names = [str(s) for s in _labels(indicator_names, arr.shape[1], "indicator_names")]
    data, kept, excluded = _drop_missing(arr, _labels(ids, arr.shape[0], "ids"))
    n, m = data.shape
    if n < 2:
        raise InvalidParameterValue(f"PCA needs at least 2 territories with complete data; got {n}")
    top = min(n, m)
    if n_components is not None and not 1 <= int(n_components) <= top:
        raise InvalidParameterValue(
            f"n_components must be between 1 and min(territories, indicators) = {top}; got {n_components}"
        )
    z = standardize(data, indicator_names=names).z
    model = PCA(n_components=None if n_components is None else int(n_components), svd_solver="full")
    scores = model.fit_transform(z)
    sign = _normalise_signs(model.components_)
    components = model.components_ * sign[:, None]
    ratio = model.explained_variance_ratio_
    # Total variance of m standardised columns is m, so eigenvalue_c = ratio_c · m.
    loadings = components * np.sqrt(np.clip(ratio, 0.0, None) * m)[:, None]
    return PCAResult(kept, names, ratio, components, loadings, scores * sign[None, :], excluded)


# ---------------------------------------------------------------- composite index


@dataclass
class SustainabilityIndex:
    normalized: np.ndarray  # n × m, 0..100, 100 = best territory on that indicator
    weights: np.ndarray  # effective weights of the indicators, sum 1
    composite: np.ndarray  # per territory, 0..100: Σ_j weights_j · normalized_ij
    ranks: np.ndarray  # 1 = best composite; ties share the lower (better) rank
    sub_indices: dict[str, np.ndarray] = field(default_factory=dict)  # per group, 0..100
    group_weights: dict[str, float] = field(default_factory=dict)  # share of each group in the composite
    notes: list[str] = field(default_factory=list)


def _weights(weights: Sequence[float] | None, m: int) -> np.ndarray:
    if weights is None:
        return np.full(m, 1.0 / m)
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or w.size != m:
        raise InvalidParameterValue(f"weights has {w.size} entries but values has {m} indicator columns")
    if not np.isfinite(w).all():
        raise InvalidParameterValue("weights must be finite numbers")
    if (w < 0).any():
        j = int((w < 0).argmax())
        raise InvalidParameterValue(f"weights must be ≥ 0; indicator {j} has weight {w[j]}")
    if w.sum() <= 0:
        raise InvalidParameterValue("weights must not all be zero")
    return w / w.sum()


def _min_max(arr: np.ndarray, dirs: list[str]) -> tuple[np.ndarray, list[int]]:
    """0..100 per column (inverted for "lower"); constant columns get 50 and are returned as such."""
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    span = hi - lo
    constant = span <= 1e-12 * np.maximum(1.0, np.abs(hi))
    safe = np.where(constant, 1.0, span)
    higher = 100.0 * (arr - lo) / safe
    lower = 100.0 * (hi - arr) / safe
    out = np.where(np.array(dirs) == "lower", lower, higher)
    out[:, constant] = 50.0  # no information: the neutral middle, the same for everyone
    return out, [int(j) for j in np.flatnonzero(constant)]


def _group_indices(
    norm: np.ndarray, w: np.ndarray, groups: Sequence[str], m: int
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    g = [str(x) for x in groups]
    if len(g) != m:
        raise InvalidParameterValue(f"groups has {len(g)} entries but values has {m} indicator columns")
    subs: dict[str, np.ndarray] = {}
    shares: dict[str, float] = {}
    for name in dict.fromkeys(g):  # first-appearance order
        cols = np.array([x == name for x in g])
        total = float(w[cols].sum())
        if total <= 0:
            raise InvalidParameterValue(f"group {name!r} has only zero weights: its sub-index is undefined")
        subs[name] = norm[:, cols] @ (w[cols] / total)
        shares[name] = total
    return subs, shares


def _ranks(composite: np.ndarray) -> np.ndarray:
    # Round before ranking so that equal scores differing only by float noise share a rank.
    return rankdata(-np.round(composite, 9), method="min").astype(int)


def sustainability_index(
    values: Matrix,
    directions: Sequence[str],
    weights: Sequence[float] | None = None,
    groups: Sequence[str] | None = None,
    indicator_names: Sequence[str] | None = None,
) -> SustainabilityIndex:
    """Composite index by min-max normalisation and weighted linear aggregation (OECD/JRC 2008).

    Per indicator j over the territories compared:
    ``"higher"``: 100 · (x − min) / (max − min); ``"lower"``: 100 · (max − x) / (max − min).
    A constant column carries no information: everyone gets 50 and a note says so.
    Weights (default equal) must be ≥ 0, not all zero, and are normalised to sum 1.
    ``composite_i = Σ_j w_j · norm_ij``; a group's sub-index is the same mean over the group's
    indicators with the weights renormalised within the group, so
    ``composite = Σ_g group_weight_g · sub_index_g``. Ranks: 1 = best, ties share the lower rank.
    """
    arr = _matrix(values)
    n, m = arr.shape
    if n < 2:
        raise InvalidParameterValue(f"min-max normalisation needs at least 2 territories; got {n}")
    dirs = _directions(directions, m)
    names = _labels(indicator_names, m, "indicator_names", default="column ")
    w = _weights(weights, m)
    norm, constant = _min_max(arr, dirs)
    notes = [
        f"indicator {names[j]} has the same value for every territory: no information, scored 50 for everyone"
        for j in constant
    ]
    subs, shares = _group_indices(norm, w, groups, m) if groups is not None else ({}, {})
    composite = norm @ w
    return SustainabilityIndex(norm, w, composite, _ranks(composite), subs, shares, notes)
