"""Territorial analytics (clustering, PCA, composite index) and budget equalization against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from layers.errors import InvalidParameterValue
from planning.analytics import _normalise_signs, cluster, pca, standardize, sustainability_index
from planning.budget import budget_capacity, equalization_subsidy, tax_potential_index

# ---------------------------------------------------------------- standardize


def test_standardize_hand_computed_and_direction_flip() -> None:
    # Column [1, 2, 3]: mean 2, population std √(2/3) → z = [−1, 0, 1] · √(3/2) = ∓1.2247.
    s = standardize([[1, 10], [2, 20], [3, 30]], directions=["higher", "lower"])
    k = math.sqrt(1.5)
    assert s.mean == pytest.approx([2, 20])
    assert s.std == pytest.approx([math.sqrt(2 / 3), 10 * math.sqrt(2 / 3)])
    assert s.z[:, 0] == pytest.approx([-k, 0, k])
    assert s.z[:, 1] == pytest.approx([k, 0, -k])  # "lower is better": the smallest value gets the largest z


def test_standardize_refuses_constant_column_by_name() -> None:
    with pytest.raises(InvalidParameterValue, match="beds.*zero variance") as err:
        standardize([[1, 5], [2, 5], [3, 5]], indicator_names=["income", "beds"])
    assert err.value.context["constant"] == ["beds"]


def test_standardize_refuses_nan_and_bad_direction() -> None:
    with pytest.raises(InvalidParameterValue, match="NaN.*row 1, column 0"):
        standardize([[1, 2], [np.nan, 3], [2, 4]])
    with pytest.raises(InvalidParameterValue, match="'higher' or 'lower'"):
        standardize([[1, 2], [2, 3]], directions=["higher", "up"])


# ---------------------------------------------------------------- clustering


def two_blobs(n: int = 12, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal([0, 0, 50], [0.5, 0.5, 2.0], size=(n, 3))
    b = rng.normal([10, 8, 90], [0.5, 0.5, 2.0], size=(n, 3))
    values = np.vstack([a, b])
    truth = np.array([0] * n + [1] * n)
    perm = rng.permutation(2 * n)  # interleave so that cluster order is not the input order
    return values[perm], truth[perm]


def test_cluster_recovers_two_blobs_and_chooses_k2_by_silhouette() -> None:
    values, truth = two_blobs()
    res = cluster(values, names=[f"m{i}" for i in range(len(values))])
    assert res.k == 2
    assert max(res.silhouette_by_k, key=res.silhouette_by_k.get) == 2
    assert set(res.silhouette_by_k) == set(range(2, 9))
    # Agreement up to permutation of the labels.
    assert (res.labels == truth).all() or (res.labels == 1 - truth).all()
    assert sorted(res.sizes.tolist()) == [12, 12]
    # Centroids in original units: the blob means; equal to the members' means at convergence.
    assert res.cluster_means == pytest.approx(res.centroids, abs=1e-9)
    for c in range(2):
        assert res.cluster_means[c] == pytest.approx(values[res.labels == c].mean(axis=0))
    assert sorted(res.centroids[:, 0].round()) == [0, 10]
    assert res.labels[0] == 0  # canonical numbering: the first territory is in cluster 0


def test_cluster_is_reproducible_for_a_seed() -> None:
    values, _ = two_blobs(seed=7)
    a, b = cluster(values, k=3, seed=5), cluster(values, k=3, seed=5)
    assert (a.labels == b.labels).all() and a.silhouette == b.silhouette


def test_cluster_silhouette_hand_computed() -> None:
    # 1-D points 0, 1, 10, 11; clusters {0, 1} and {10, 11}. Standardising a single column is an affine
    # map, which leaves the silhouette unchanged. Point 0: a = 1, b = (10 + 11)/2 = 10.5, s = 1 − 1/10.5;
    # point 1: a = 1, b = (9 + 10)/2 = 9.5, s = 1 − 1/9.5; 10 and 11 mirror them. Mean ≈ 0.899749.
    res = cluster([[0], [1], [10], [11]], k=2)
    assert res.silhouette == pytest.approx((2 - 1 / 10.5 - 1 / 9.5) / 2, abs=1e-12)
    assert res.labels.tolist() == [0, 0, 1, 1]
    assert res.centroids[:, 0] == pytest.approx([0.5, 10.5])
    assert res.members(1) == [2, 3]


def test_cluster_leaves_out_and_lists_rows_with_missing_values() -> None:
    values, truth = two_blobs()
    values = values.copy()
    values[3, 1] = np.nan
    values[10, 0] = np.nan
    res = cluster(values, names=[f"m{i}" for i in range(len(values))], k=2)
    assert res.excluded == ["m3", "m10"]
    assert len(res.ids) == len(res.labels) == len(values) - 2
    assert "m3" not in res.ids
    kept = np.delete(truth, [3, 10])
    assert (res.labels == kept).all() or (res.labels == 1 - kept).all()


def test_cluster_refusals() -> None:
    values, _ = two_blobs(n=3)
    with pytest.raises(InvalidParameterValue, match=r"2 ≤ k < number of territories \(6\); got 6"):
        cluster(values, k=6)
    with pytest.raises(InvalidParameterValue, match="got 1"):
        cluster(values, k=1)
    with pytest.raises(InvalidParameterValue, match="at least 3 territories.*got 2.*left out"):
        cluster([[1, 2], [2, 3], [np.nan, 1], [np.nan, 0]])
    with pytest.raises(InvalidParameterValue, match="pop.*zero variance"):
        cluster([[1, 7], [2, 7], [3, 7], [4, 7]], k=2, indicator_names=["inc", "pop"])
    with pytest.raises(InvalidParameterValue, match="names has 2 entries but values has 6"):
        cluster(values, names=["a", "b"])
    with pytest.raises(InvalidParameterValue, match="k_range"):
        cluster(values, k_range=(1, 4))
    with pytest.raises(InvalidParameterValue, match="exceeds the 2 distinct"):
        cluster([[0, 0], [0, 0], [1, 1], [1, 1]], k=3)


# ---------------------------------------------------------------- PCA


def test_pca_perfectly_correlated_columns() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    res = pca(np.column_stack([x, -3 * x + 5]), ["a", "b"])
    assert res.explained_variance_ratio[0] == pytest.approx(1.0, abs=1e-12)
    assert res.explained_variance_ratio[1] == pytest.approx(0.0, abs=1e-12)
    # Correlations with the first component: a = +1, b = −1 (sign normalised: the first of the tied
    # largest |loadings| is the positive one, whichever sign the SVD happened to return).
    assert abs(res.loadings[0]) == pytest.approx([1.0, 1.0])
    assert res.loadings[0, np.abs(res.loadings[0]).argmax()] > 0
    assert res.loadings[0, 0] * res.loadings[0, 1] == pytest.approx(-1.0)
    # Score = (z_a − z_b)/√2 with z_b = −z_a, i.e. √2 · z_a; z_a = (x − 2.5)/√1.25, up to the component's sign.
    z_a = (x - 2.5) / math.sqrt(1.25)
    expected = math.sqrt(2) * z_a * np.sign(res.loadings[0, 0])
    assert res.scores[:, 0] == pytest.approx(expected)


def test_pca_hand_computed_two_indicators() -> None:
    # x = [1, 2, 3], y = [1, 3, 2]: deviations [−1, 0, 1] and [−1, 1, 0], so r = 1 / √(2·2) = 0.5.
    # Correlation matrix [[1, r], [r, 1]]: eigenvalues 1 ± r = 1.5, 0.5 → ratios 0.75, 0.25;
    # first eigenvector (1, 1)/√2, loadings (1/√2)·√1.5 = √0.75 ≈ 0.866 each.
    res = pca([[1, 1], [2, 3], [3, 2]], ["x", "y"])
    assert res.explained_variance_ratio == pytest.approx([0.75, 0.25])
    assert res.loadings[0] == pytest.approx([math.sqrt(0.75)] * 2)
    assert abs(res.loadings[1]) == pytest.approx([0.5, 0.5])
    for c in range(2):  # the largest absolute loading of every component is positive
        assert res.loadings[c, np.abs(res.loadings[c]).argmax()] > 0
        assert np.linalg.norm(res.components[c]) == pytest.approx(1.0)
    # Scores reproduce the standardised data: z = scores · components.
    z = standardize([[1, 1], [2, 3], [3, 2]]).z
    assert res.scores @ res.components == pytest.approx(z)


def test_sign_normalisation_makes_largest_absolute_coefficient_positive() -> None:
    # Our guarantee, independent of the sign convention of the installed scikit-learn.
    comps = np.array([[0.2, -0.9, 0.3], [0.6, 0.1, -0.5], [-0.1, -0.2, -0.7]])
    assert _normalise_signs(comps).tolist() == [-1.0, 1.0, -1.0]


def test_pca_n_components_missing_rows_and_refusals() -> None:
    values = np.array([[1, 1, 4], [2, 3, 1], [3, 2, 2], [np.nan, 1, 1], [5, 9, 0]])
    res = pca(values, ["a", "b", "c"], n_components=2, ids=["p", "q", "r", "s", "t"])
    assert res.excluded == ["s"] and res.ids == ["p", "q", "r", "t"]
    assert res.scores.shape == (4, 2) and res.loadings.shape == (2, 3)
    assert res.explained_variance_ratio.sum() < 1.0  # ratios stay shares of the total variance
    with pytest.raises(InvalidParameterValue, match="n_components must be between 1 and .* = 3; got 4"):
        pca(values, ["a", "b", "c"], n_components=4)
    with pytest.raises(InvalidParameterValue, match="c.*zero variance"):
        pca([[1, 2, 3], [2, 1, 3], [3, 3, 3]], ["a", "b", "c"])
    with pytest.raises(InvalidParameterValue, match="indicator_names has 2 entries but values has 3"):
        pca(values, ["a", "b"])


# ---------------------------------------------------------------- sustainability index


def test_min_max_index_3x2_by_hand() -> None:
    # Column 0 "higher", min 10, max 40: 100·(x − 10)/30 → 0, 33.33, 100.
    # Column 1 "lower",  min 1,  max 5:  100·(5 − x)/4  → 0, 50, 100.
    # Weights [3, 1] → [0.75, 0.25]; composite: 0; 0.75·33.33 + 0.25·50 = 37.5; 100. Ranks 3, 2, 1.
    res = sustainability_index([[10, 5], [20, 3], [40, 1]], ["higher", "lower"], weights=[3, 1])
    assert res.normalized == pytest.approx(np.array([[0, 0], [100 / 3, 50], [100, 100]]))
    assert res.weights == pytest.approx([0.75, 0.25])
    assert res.composite == pytest.approx([0, 37.5, 100])
    assert res.ranks.tolist() == [3, 2, 1]
    assert res.notes == []


def test_sub_indices_renormalise_weights_within_groups() -> None:
    # Weights [1, 3, 4] → [0.125, 0.375, 0.5]; group "env" = columns 0, 1 with in-group weights [0.25, 0.75].
    # Normalised (all "higher"): column 0 [0, 100, 50], column 1 [100, 0, 50], column 2 [0, 50, 100].
    # env = 0.25·c0 + 0.75·c1 = [75, 25, 50]; econ = c2 = [0, 50, 100];
    # composite = 0.5·env + 0.5·econ = [37.5, 37.5, 75] → ranks 2, 2, 1 (the tie shares rank 2).
    values = [[0, 10, 1], [2, 0, 2], [1, 5, 3]]
    res = sustainability_index(values, ["higher"] * 3, weights=[1, 3, 4], groups=["env", "env", "econ"])
    assert res.sub_indices["env"] == pytest.approx([75, 25, 50])
    assert res.sub_indices["econ"] == pytest.approx([0, 50, 100])
    assert res.group_weights == pytest.approx({"env": 0.5, "econ": 0.5})
    assert res.composite == pytest.approx([37.5, 37.5, 75])
    composite_from_groups = sum(res.group_weights[g] * res.sub_indices[g] for g in res.sub_indices)
    assert res.composite == pytest.approx(composite_from_groups)
    assert res.ranks.tolist() == [2, 2, 1]


def test_ties_share_the_lower_rank() -> None:
    # Equal weights; rows 0 and 1 identical → equal composites → both rank 1, the next is rank 3.
    res = sustainability_index([[5, 1], [5, 1], [1, 3], [3, 2]], ["higher", "lower"])
    assert res.composite == pytest.approx([100, 100, 0, 50])
    assert res.ranks.tolist() == [1, 1, 4, 3]


def test_constant_column_scores_50_with_a_note() -> None:
    res = sustainability_index([[1, 7], [3, 7]], ["higher", "lower"], indicator_names=["jobs", "noise"])
    assert res.normalized[:, 1] == pytest.approx([50, 50])
    assert res.composite == pytest.approx([25, 75])  # 0.5·0 + 0.5·50, 0.5·100 + 0.5·50
    assert len(res.notes) == 1 and "noise" in res.notes[0] and "50" in res.notes[0]


def test_sustainability_index_refusals() -> None:
    values = [[1, 2], [3, 4], [5, 1]]
    with pytest.raises(InvalidParameterValue, match="indicator 1 has weight -1"):
        sustainability_index(values, ["higher", "higher"], weights=[2, -1])
    with pytest.raises(InvalidParameterValue, match="not all be zero"):
        sustainability_index(values, ["higher", "higher"], weights=[0, 0])
    with pytest.raises(InvalidParameterValue, match="weights has 3 entries but values has 2"):
        sustainability_index(values, ["higher", "higher"], weights=[1, 1, 1])
    with pytest.raises(InvalidParameterValue, match="directions has 1 entries"):
        sustainability_index(values, ["higher"])
    with pytest.raises(InvalidParameterValue, match="groups has 1 entries"):
        sustainability_index(values, ["higher", "lower"], groups=["a"])
    with pytest.raises(InvalidParameterValue, match="group 'b' has only zero weights"):
        sustainability_index(values, ["higher", "lower"], weights=[1, 0], groups=["a", "b"])
    with pytest.raises(InvalidParameterValue, match="NaN.*row 2, column 1"):
        sustainability_index([[1, 2], [3, 4], [5, np.nan]], ["higher", "higher"])
    with pytest.raises(InvalidParameterValue, match="at least 2 territories"):
        sustainability_index([[1, 2]], ["higher", "higher"])


# ---------------------------------------------------------------- tax potential and budget capacity


def test_tax_potential_index_population_weighted() -> None:
    # t = [100, 200, 400], P = [3, 1, 1]: t̄ = (300 + 200 + 400)/5 = 180 → ITP = [5/9, 10/9, 20/9].
    # With IBR = [1, 2, 1]: ITP/IBR = [5/9, 5/9, 20/9].
    res = tax_potential_index([100, 200, 400], population=[3, 1, 1])
    assert res.average == pytest.approx(180)
    assert res.index == pytest.approx([5 / 9, 10 / 9, 20 / 9])
    assert np.dot(res.index, [3, 1, 1]) / 5 == pytest.approx(1.0)  # weighted mean of the index is 1
    adjusted = tax_potential_index([100, 200, 400], population=[3, 1, 1], expenditure_index=[1, 2, 1])
    assert adjusted.index == pytest.approx([5 / 9, 5 / 9, 20 / 9])
    # Unweighted: t̄ = 700/3 → ITP = [3/7, 6/7, 12/7].
    assert tax_potential_index([100, 200, 400]).index == pytest.approx([3 / 7, 6 / 7, 12 / 7])


def test_tax_potential_index_accepts_mappings_by_id() -> None:
    res = tax_potential_index({"b": 200, "a": 100, "c": 400}, population={"a": 3, "c": 1, "b": 1})
    assert res.ids == ["b", "a", "c"]
    assert res.as_dict() == pytest.approx({"a": 5 / 9, "b": 10 / 9, "c": 20 / 9})


def test_budget_capacity_by_hand() -> None:
    # r = [50, 150, 100], P = [2, 1, 1]: r̄ = (100 + 150 + 100)/4 = 87.5;
    # BO = (r/r̄)/IBR with IBR = [0.5, 1.5, 1] → [(4/7)/0.5, (12/7)/1.5, 8/7] = [8/7, 8/7, 8/7].
    res = budget_capacity([50, 150, 100], [0.5, 1.5, 1.0], population=[2, 1, 1])
    assert res.average == pytest.approx(87.5)
    assert res.index == pytest.approx([8 / 7] * 3)


def test_budget_input_refusals() -> None:
    with pytest.raises(InvalidParameterValue, match="different lengths"):
        budget_capacity([1, 2, 3], [1, 1])
    with pytest.raises(InvalidParameterValue, match="expenditure_index must be > 0; municipality 1 has 0"):
        budget_capacity([1, 2], [1, 0])
    with pytest.raises(InvalidParameterValue, match="tax_revenue_per_capita is NaN or infinite at position 1"):
        budget_capacity([1, np.nan], [1, 1])
    with pytest.raises(InvalidParameterValue, match="cover different municipalities"):
        tax_potential_index({"a": 1, "b": 2}, population={"a": 1, "c": 2})
    with pytest.raises(InvalidParameterValue, match="every input as a mapping"):
        tax_potential_index({"a": 1, "b": 2}, population=[1, 2])
    with pytest.raises(InvalidParameterValue, match="zero everywhere"):
        tax_potential_index([0, 0])


# ---------------------------------------------------------------- equalization

POP = [100, 200, 100]
ITP = [0.5, 0.9, 1.6]
IBR = [1.0, 1.2, 0.8]
# BO = ITP/IBR = [0.5, 0.75, 2.0]; money per unit of BO raised = IBR·P = [100, 240, 80].


def test_equalization_to_a_given_level() -> None:
    # T = 1: D = [(1 − 0.5)·100, (1 − 0.75)·240, 0] = [50, 60, 0], total 110; after = [1, 1, 2].
    res = equalization_subsidy(POP, ITP, IBR, target_level=1.0)
    assert res.provision_before == pytest.approx([0.5, 0.75, 2.0])
    assert res.transfers == pytest.approx([50, 60, 0])
    assert res.total == pytest.approx(110)
    assert res.provision_after == pytest.approx([1, 1, 2])


def test_equalization_solves_level_for_fund() -> None:
    # Fund 80. Raising the poorest to 0.75 costs (0.75 − 0.5)·100 = 25 < 80, so T ∈ (0.75, 2):
    # 100·(T − 0.5) + 240·(T − 0.75) = 340 T − 230 = 80 → T = 310/340 ≈ 0.9118.
    # D = [100·(T − 0.5), 240·(T − 0.75), 0] ≈ [41.18, 38.82, 0].
    res = equalization_subsidy(POP, ITP, IBR, fund=80)
    t = 310 / 340
    assert res.level == pytest.approx(t, rel=1e-12)
    assert res.transfers == pytest.approx([100 * (t - 0.5), 240 * (t - 0.75), 0.0])
    assert res.transfers.sum() == pytest.approx(80, rel=1e-12)
    assert res.provision_after == pytest.approx([t, t, 2.0])
    assert res.notes == []
    # In money: with R̄ = 1000 per capita a fund of 80 000 buys the same level.
    money = equalization_subsidy(POP, ITP, IBR, fund=80_000, average_per_capita=1000)
    assert money.level == pytest.approx(t, rel=1e-12)
    assert money.transfers == pytest.approx(res.transfers * 1000)


def test_equalization_fund_below_first_kink_and_zero_fund() -> None:
    # Fund 10 < 25: only the poorest is lifted, T = 0.5 + 10/100 = 0.6.
    assert equalization_subsidy(POP, ITP, IBR, fund=10).level == pytest.approx(0.6)
    zero = equalization_subsidy(POP, ITP, IBR, fund=0)
    assert zero.level == pytest.approx(0.5) and zero.total == 0


def test_equalization_fund_beyond_the_richest() -> None:
    # Lifting everybody to 2.0 costs 1.5·100 + 1.25·240 = 450; 450 + 420 more spread over Σ IBR·P = 420 → T = 3.
    res = equalization_subsidy(POP, ITP, IBR, fund=870)
    assert res.level == pytest.approx(3.0)
    assert (res.transfers > 0).all()
    assert res.provision_after == pytest.approx([3, 3, 3])
    assert len(res.notes) == 1 and "every municipality" in res.notes[0]


def test_equalization_properties_on_random_municipalities() -> None:
    rng = np.random.default_rng(42)
    n = 60
    pop = rng.integers(500, 200_000, n).astype(float)
    itp = rng.lognormal(0, 0.5, n)
    ibr = rng.uniform(0.7, 1.5, n)
    bo = itp / ibr
    fund = 0.3 * float(np.dot(np.clip(np.median(bo) - bo, 0, None), ibr * pop)) * 25_000
    res = equalization_subsidy(
        dict(enumerate(pop)), dict(enumerate(itp)), dict(enumerate(ibr)), fund=fund, average_per_capita=25_000
    )
    assert res.total == pytest.approx(fund, rel=1e-12)
    below = res.provision_before < res.level
    assert below.any() and (~below).any()
    assert res.provision_after[below] == pytest.approx(np.full(below.sum(), res.level), rel=1e-12)
    assert (res.transfers[~below] == 0).all()  # nobody at or above T receives anything
    assert (res.provision_after[~below] == res.provision_before[~below]).all()
    # Rank order preserved: whoever was strictly behind is never strictly ahead after equalization.
    i, j = np.nonzero(res.provision_before[:, None] < res.provision_before[None, :])
    assert (res.provision_after[i] <= res.provision_after[j] + 1e-12).all()
    before_rank = np.argsort(np.argsort(res.provision_before[~below]))
    after_rank = np.argsort(np.argsort(res.provision_after[~below]))
    assert (before_rank == after_rank).all()


def test_equalization_refusals() -> None:
    with pytest.raises(InvalidParameterValue, match="exactly one of fund"):
        equalization_subsidy(POP, ITP, IBR)
    with pytest.raises(InvalidParameterValue, match="exactly one of fund"):
        equalization_subsidy(POP, ITP, IBR, fund=10, target_level=1)
    with pytest.raises(InvalidParameterValue, match="fund must be a finite number ≥ 0; got -5"):
        equalization_subsidy(POP, ITP, IBR, fund=-5)
    with pytest.raises(InvalidParameterValue, match="target_level must be a finite number > 0"):
        equalization_subsidy(POP, ITP, IBR, target_level=0)
    with pytest.raises(InvalidParameterValue, match="population must be > 0; municipality 1 has 0"):
        equalization_subsidy([100, 0, 100], ITP, IBR, fund=10)
    with pytest.raises(InvalidParameterValue, match="different lengths"):
        equalization_subsidy(POP, ITP[:2], IBR, fund=10)
    with pytest.raises(InvalidParameterValue, match="tax_capacity_index must be ≥ 0"):
        equalization_subsidy(POP, [0.5, -0.1, 1], IBR, fund=10)
