"""Budget capacity of municipalities, tax potential and equalization subsidies (pure computation).

Inputs are per municipality, either all as sequences in the same order (ids become 0..n-1) or
all as mappings ``{municipality id: value}`` with the same keys (ids in the first mapping's
order); mixing the two is refused. Notation, after the Russian methodology:

* ``P_i`` — population;
* ``ИНП`` / ITP_i — tax potential index: per-capita tax potential relative to the
  population-weighted average, ``t_i / t̄`` with ``t̄ = Σ t_i P_i / Σ P_i`` (total potential over
  total population), so the population-weighted mean of ITP is exactly 1;
* ``ИБР`` / IBR_i — budget expenditure index: the relative cost of providing the same set of
  services per resident (1 = average cost). It is taken as given, not renormalised;
* ``БО`` / BO_i — level of estimated budget provision (уровень расчётной бюджетной
  обеспеченности), ``BO_i = ITP_i / IBR_i``: how many "average" per-capita service packages
  the municipality's own revenue buys.

Equalization: the Budget Code of the Russian Federation has equalization grants distributed by
the level of estimated budget provision (art. 138 for municipal districts/okrugs and city
okrugs, art. 137 for settlements, art. 131 for regions) and leaves the formula to the
methodology — Government Decree No. 670 of 22.11.2004 for regions, adapted by regional laws
for municipalities. Its core rule is implemented here, and only it: the fund raises every
municipality below a target level T to exactly T; those at or above T receive nothing (see
:func:`equalization_subsidy`). Regional add-ons (a guaranteed minimum share per resident, caps,
a second "per capita" part of the fund) are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from layers.errors import InvalidParameterValue

Values = Mapping[Hashable, float] | Sequence[float] | np.ndarray


# ---------------------------------------------------------------- validation helpers


def _align(named: dict[str, Values | None]) -> tuple[list[Hashable], dict[str, np.ndarray]]:
    """Ids and one float array per argument, all in the same municipality order."""
    given = {k: v for k, v in named.items() if v is not None}
    maps = [k for k, v in given.items() if isinstance(v, Mapping)]
    if maps and len(maps) != len(given):
        plain = [k for k in given if k not in maps]
        raise InvalidParameterValue(
            f"give every input as a mapping by municipality id or every input as a list; "
            f"{', '.join(maps)} are mappings but {', '.join(plain)} are not"
        )
    if maps:
        ids = list(given[maps[0]].keys())
        for k in maps[1:]:
            if set(given[k].keys()) != set(ids):
                diff = sorted(map(str, set(given[k].keys()) ^ set(ids)))
                raise InvalidParameterValue(f"{k} and {maps[0]} cover different municipalities: {diff}")
        rows = {k: [given[k][i] for i in ids] for k in given}
    else:
        rows = dict(given)
    arrays = {k: _vector(v, k) for k, v in rows.items()}
    sizes = {k: a.size for k, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidParameterValue(f"inputs have different lengths: {sizes}")
    if not maps:
        ids = list(range(next(iter(sizes.values()))))
    return ids, arrays


def _vector(data: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    try:
        arr = np.asarray(data, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterValue(f"{name} must be numbers: {exc}") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidParameterValue(f"{name} must be a non-empty list of numbers, one per municipality")
    if not np.isfinite(arr).all():
        raise InvalidParameterValue(f"{name} is NaN or infinite at position {int((~np.isfinite(arr)).argmax())}")
    return arr


def _check(arr: np.ndarray, name: str, ids: list[Hashable], strictly: bool) -> None:
    bad = arr <= 0 if strictly else arr < 0
    if bad.any():
        i = int(bad.argmax())
        raise InvalidParameterValue(
            f"{name} must be {'> 0' if strictly else '≥ 0'}; municipality {ids[i]} has {arr[i]}"
        )


def _positive_scalar(value: float, name: str, allow_zero: bool = False) -> float:
    x = float(value)
    if not math.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise InvalidParameterValue(f"{name} must be a finite number {'≥' if allow_zero else '>'} 0; got {value}")
    return x


def _weighted_mean(x: np.ndarray, population: np.ndarray) -> float:
    return float(np.dot(x, population) / population.sum())


# ---------------------------------------------------------------- indices


@dataclass
class RelativeIndex:
    ids: list[Hashable]
    index: np.ndarray  # per municipality, 1 = average
    average: float  # (population-weighted) average per capita, original units

    def as_dict(self) -> dict[Hashable, float]:
        return {i: float(v) for i, v in zip(self.ids, self.index, strict=True)}


def _relative(
    per_capita: np.ndarray, population: np.ndarray | None, ids: list[Hashable], name: str
) -> tuple[np.ndarray, float]:
    _check(per_capita, name, ids, strictly=False)
    if population is None:
        population = np.ones_like(per_capita)  # every municipality counts once
    _check(population, "population", ids, strictly=True)
    avg = _weighted_mean(per_capita, population)
    if avg <= 0:
        raise InvalidParameterValue(f"{name} is zero everywhere: no average to compare with")
    return per_capita / avg, avg


def tax_potential_index(
    tax_potential_per_capita: Values, population: Values | None = None, expenditure_index: Values | None = None
) -> RelativeIndex:
    """Tax potential index ITP_i = t_i / t̄ (ИНП).

    ``t_i`` is the tax potential (or tax base) per capita, ``t̄ = Σ t_i P_i / Σ P_i`` the
    population-weighted average, i.e. the total potential over the total population (a plain
    mean if ``population`` is None). With ``expenditure_index`` the result is adjusted for the
    cost of services: ``ITP_i / IBR_i`` (which is the budget provision level BO_i).
    """
    ids, a = _align(
        {
            "tax_potential_per_capita": tax_potential_per_capita,
            "population": population,
            "expenditure_index": expenditure_index,
        }
    )
    index, avg = _relative(a["tax_potential_per_capita"], a.get("population"), ids, "tax_potential_per_capita")
    if "expenditure_index" in a:
        _check(a["expenditure_index"], "expenditure_index", ids, strictly=True)
        index = index / a["expenditure_index"]
    return RelativeIndex(ids, index, avg)


def budget_capacity(
    tax_revenue_per_capita: Values, expenditure_index: Values, population: Values | None = None
) -> RelativeIndex:
    """Level of estimated budget provision BO_i = (r_i / r̄) / IBR_i (уровень расчётной бюджетной обеспеченности).

    ``r_i`` is the (estimated) tax revenue per capita, ``r̄ = Σ r_i P_i / Σ P_i`` its
    population-weighted average (a plain mean if ``population`` is None) and IBR_i the budget
    expenditure index. BO = 1: the municipality can fund the average package of services at its cost.
    """
    ids, a = _align(
        {
            "tax_revenue_per_capita": tax_revenue_per_capita,
            "expenditure_index": expenditure_index,
            "population": population,
        }
    )
    _check(a["expenditure_index"], "expenditure_index", ids, strictly=True)
    index, avg = _relative(a["tax_revenue_per_capita"], a.get("population"), ids, "tax_revenue_per_capita")
    return RelativeIndex(ids, index / a["expenditure_index"], avg)


# ---------------------------------------------------------------- equalization


@dataclass
class Equalization:
    ids: list[Hashable]
    transfers: np.ndarray  # per municipality, money (units of average_per_capita × persons)
    level: float  # target level T of budget provision
    provision_before: np.ndarray  # BO_i
    provision_after: np.ndarray  # BO_i + D_i / (R̄ · IBR_i · P_i) = max(BO_i, T)
    total: float  # Σ transfers
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[Hashable, float]:
        return {i: float(v) for i, v in zip(self.ids, self.transfers, strict=True)}


def _cost_to_raise(level: float, bo: np.ndarray, need: np.ndarray) -> float:
    """Σ max(0, T − BO_i) · IBR_i · P_i, in units of the average per-capita revenue."""
    return float(np.dot(np.clip(level - bo, 0.0, None), need))


def _level_for_fund(fund: float, bo: np.ndarray, need: np.ndarray) -> float:
    """T with Σ max(0, T − BO_i) · need_i = fund, solved exactly.

    The cost is continuous, piecewise linear and strictly increasing above min BO, with kinks at the
    BO_i: on [b_(k), b_(k+1)] it equals T · C_k − B_k with C_k = Σ_{j≤k} need_(j) and
    B_k = Σ_{j≤k} need_(j) · b_(j). Find the segment holding ``fund`` and invert that line.
    """
    order = np.argsort(bo, kind="stable")
    b, c = bo[order], need[order]
    cum_c, cum_b = np.cumsum(c), np.cumsum(c * b)
    # Cost at each next breakpoint b_(k+1) using the k cheapest-to-reach municipalities; +inf past the last.
    at_next = np.append(b[1:] * cum_c[:-1] - cum_b[:-1], np.inf)
    k = int(np.argmax(at_next >= fund))
    return float((fund + cum_b[k]) / cum_c[k])


def equalization_subsidy(
    population: Values,
    tax_capacity_index: Values,
    expenditure_index: Values,
    fund: float | None = None,
    target_level: float | None = None,
    average_per_capita: float = 1.0,
) -> Equalization:
    """Equalization subsidies by the "raise everyone below T to T" rule.

    Budget provision ``BO_i = ITP_i / IBR_i`` (``tax_capacity_index`` = ITP_i). A municipality
    with ``BO_i < T`` receives

        D_i = (T − BO_i) · IBR_i · P_i · R̄

    where ``R̄`` (``average_per_capita``) is the average tax revenue per capita in money; with the
    default 1 the transfers are measured in "average per-capita revenues". This is exactly the sum
    that lifts its provision to T: ``BO_i + D_i / (R̄ · IBR_i · P_i) = T``. Municipalities with
    ``BO_i ≥ T`` receive nothing, so ``BO_after = max(BO_i, T)``: a non-decreasing map, hence nobody
    overtakes anybody (ties are created only among those lifted to T).

    Give exactly one of ``target_level`` (T is fixed; the cost is the result) or ``fund`` (the
    total to distribute, same money units; T is solved so that Σ D_i = fund exactly). A fund
    larger than what lifts everybody to the highest BO raises T above it and everybody receives
    a transfer; a note says so.
    """
    if (fund is None) == (target_level is None):
        raise InvalidParameterValue("give exactly one of fund (total to distribute) or target_level (level T)")
    ids, a = _align(
        {"population": population, "tax_capacity_index": tax_capacity_index, "expenditure_index": expenditure_index}
    )
    pop, itp, ibr = a["population"], a["tax_capacity_index"], a["expenditure_index"]
    _check(pop, "population", ids, strictly=True)
    _check(itp, "tax_capacity_index", ids, strictly=False)
    _check(ibr, "expenditure_index", ids, strictly=True)
    scale = _positive_scalar(average_per_capita, "average_per_capita")
    bo = itp / ibr
    need = ibr * pop * scale  # money per unit of BO raised
    notes: list[str] = []
    if fund is not None:
        level = _level_for_fund(_positive_scalar(fund, "fund", allow_zero=True), bo, need)
        if level > bo.max():
            notes.append(
                f"the fund exceeds {_cost_to_raise(float(bo.max()), bo, need):.6g}, the cost of lifting everybody "
                f"to the highest level {bo.max():.6g}: every municipality receives a transfer"
            )
    else:
        level = _positive_scalar(target_level, "target_level")
    transfers = np.clip(level - bo, 0.0, None) * need
    after = bo + transfers / need
    return Equalization(ids, transfers, level, bo, after, float(transfers.sum()), notes)
