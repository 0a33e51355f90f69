"""Forecast scenarios of a fuel and energy balance, as plain data (dataclasses) with validation.

A scenario says how the drivers of energy demand move from the base year to the horizon year:
activity (sector output growth, population for households), energy-intensity trends, tariffs
(price paths and own-price elasticities), inter-fuel substitution (calibrated logit over delivered
cost), an optional input–output (Leontief) model of sector outputs, and the technologies of
electricity and heat production (efficiencies, output mix). Every rate is an annual fraction
(0.02 = +2 % a year). `energy.forecast` reads these; nothing here computes a balance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from energy import layout
from layers.errors import InvalidParameterValue

FUELS: tuple[str, ...] = (
    "coal", "crude_oil", "petroleum_products", "natural_gas", "other_solid_fuel", "hydro_renewables", "nuclear",
)
CARRIERS: tuple[str, ...] = layout.CARRIER_COLUMNS  # FUELS + electricity, heat (energy/layout.py)
COLUMNS: tuple[str, ...] = layout.COLUMNS

# Leaf rows of final consumption (the sectors a scenario drives) and the parents they sum to.
SECTOR_PARENTS: dict[str, tuple[str, ...]] = {
    "industry": (
        "industry_mining", "industry_manufacturing", "industry_energy_supply", "industry_water_waste", "industry_other",
    ),
    "transport": ("transport_rail", "transport_pipeline", "transport_road", "transport_other"),
}
SECTORS: tuple[str, ...] = (
    "agriculture", *SECTOR_PARENTS["industry"], "construction", *SECTOR_PARENTS["transport"],
    "services", "households", "non_energy", "other",
)
# Production technologies rebuilt from efficiencies: row -> the carrier it produces.
TECHNOLOGIES: dict[str, str] = {
    "electricity_production": "electricity",
    "heat_chp": "heat",
    "heat_boilers": "heat",
    "heat_electric_boilers": "heat",
}
HEAT_SOURCES: tuple[str, ...] = ("heat_chp", "heat_boilers", "heat_electric_boilers")
ELECTRICITY_SUPPLY_RULES: tuple[str, ...] = ("imports", "local")


def expand_sector(name: str) -> tuple[str, ...]:
    """A leaf sector, or a parent (industry, transport) standing for all its sub-rows."""
    if name in SECTOR_PARENTS:
        return SECTOR_PARENTS[name]
    if name in SECTORS:
        return (name,)
    raise InvalidParameterValue(
        f"unknown sector {name!r}; expected one of {', '.join(SECTORS + tuple(SECTOR_PARENTS))}"
    )


def _finite(value: float, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InvalidParameterValue(f"{what} must be finite, got {value!r}")
    return v


def _rate(value: float, what: str) -> float:
    v = _finite(value, what)
    if v <= -1.0:
        raise InvalidParameterValue(f"{what} must be above -1 (−100 % a year), got {v}")
    return v


def _carrier(name: str, what: str, allowed: tuple[str, ...] = CARRIERS) -> str:
    if name not in allowed:
        raise InvalidParameterValue(f"{what}: unknown carrier {name!r}; expected one of {', '.join(allowed)}")
    return name


@dataclass(frozen=True)
class Substitution:
    """Inter-fuel substitution within a sector by a logit over delivered cost.

    share_i = exp(α_i − λ·cost_i) / Σ_j exp(α_j − λ·cost_j) over `carriers`, with the calibration
    constants α_i = ln(s_i,0) + λ·cost_i,0 chosen so that base costs give back the base shares exactly.
    Costs are delivered costs per unit of energy (any currency, e.g. rub per tce) and move with the
    scenario's price index of each carrier. A carrier with a zero base share stays at zero (α = −∞):
    a calibrated logit redistributes among the fuels a sector already uses.
    """

    sector: str
    carriers: tuple[str, ...]
    base_cost: Mapping[str, float]
    logit_lambda: float

    def validate(self) -> None:
        expand_sector(self.sector)
        if len(self.carriers) < 2:
            raise InvalidParameterValue(f"substitution in {self.sector}: needs at least two carriers")
        if len(set(self.carriers)) != len(self.carriers):
            raise InvalidParameterValue(f"substitution in {self.sector}: a carrier is listed twice")
        for c in self.carriers:
            _carrier(c, f"substitution in {self.sector}")
            if c not in self.base_cost:
                raise InvalidParameterValue(f"substitution in {self.sector}: no base cost for {c}")
            if _finite(self.base_cost[c], f"base cost of {c}") <= 0:
                raise InvalidParameterValue(f"substitution in {self.sector}: the base cost of {c} must be positive")
        if _finite(self.logit_lambda, "logit lambda") < 0:
            raise InvalidParameterValue(f"substitution in {self.sector}: logit lambda must be ≥ 0")


@dataclass(frozen=True)
class InputOutput:
    """A Leontief model: x = (I − A)⁻¹ y, sector outputs x from final demand y.

    `sectors` are balance sectors (leaf or parent); the index x_t/x_0 of each drives that sector's
    activity in place of its growth rate. A[i][j] = input from sector i per unit of output of j.
    """

    sectors: tuple[str, ...]
    technical_coefficients: tuple[tuple[float, ...], ...]
    final_demand: tuple[float, ...]
    final_demand_growth: Mapping[str, float] = field(default_factory=dict)

    def matrix(self) -> np.ndarray:
        return np.asarray(self.technical_coefficients, dtype=float)

    def validate(self) -> None:
        n = len(self.sectors)
        if n == 0:
            raise InvalidParameterValue("input-output model: no sectors")
        for s in self.sectors:
            expand_sector(s)
        a = self.matrix()
        if a.shape != (n, n):
            raise InvalidParameterValue(f"input-output model: A must be {n}×{n} (one row and column per sector)")
        if not np.isfinite(a).all() or (a < 0).any():
            raise InvalidParameterValue("input-output model: technical coefficients must be finite and ≥ 0")
        if len(self.final_demand) != n:
            raise InvalidParameterValue(f"input-output model: final demand must have {n} values")
        for i, v in enumerate(self.final_demand):
            if _finite(v, f"final demand of {self.sectors[i]}") < 0:
                raise InvalidParameterValue("input-output model: final demand must be ≥ 0")
        for s, g in self.final_demand_growth.items():
            if s not in self.sectors:
                raise InvalidParameterValue(f"input-output model: final-demand growth for {s!r}, not a model sector")
            _rate(g, f"final-demand growth of {s}")
        check_productive(a)


def spectral_radius(a: np.ndarray) -> float:
    return float(np.max(np.abs(np.linalg.eigvals(a)))) if a.size else 0.0


def check_productive(a: np.ndarray) -> None:
    """Refuse a technical-coefficients matrix that cannot meet a positive final demand.

    For A ≥ 0, (I − A)⁻¹ exists and is ≥ 0 iff the spectral radius ρ(A) < 1, which is equivalent
    to the Hawkins–Simon condition (all leading principal minors of I − A positive).
    """
    rho = spectral_radius(a)
    if not rho < 1.0:
        raise InvalidParameterValue(
            f"input-output model is not productive: spectral radius of A is {rho:.4f} (must be < 1; "
            "Hawkins–Simon condition fails, the sectors consume more than they produce)",
            spectral_radius=rho,
        )


@dataclass(frozen=True)
class Technology:
    """Electricity or heat production: fuel input = output × mix_i / efficiency_i.

    `efficiency` (output per unit of fuel input, by fuel) and `output_mix` (share of the output made
    from each fuel) default to the base year's: one common efficiency = output / Σ fuel inputs, and
    mix = each fuel's share of the inputs, so the base year is reproduced. `efficiency_gain` is an
    annual relative improvement applied to every fuel's efficiency.
    """

    efficiency: Mapping[str, float] | None = None
    output_mix: Mapping[str, float] | None = None
    efficiency_gain: float = 0.0

    def validate(self, row: str) -> None:
        _rate(self.efficiency_gain, f"efficiency gain of {row}")
        for f, e in (self.efficiency or {}).items():
            _carrier(f, f"efficiency of {row}", FUELS)
            if _finite(e, f"efficiency of {row} on {f}") <= 0:
                raise InvalidParameterValue(f"efficiency of {row} on {f} must be positive")
        if self.output_mix is not None:
            total = 0.0
            for f, s in self.output_mix.items():
                _carrier(f, f"output mix of {row}", FUELS)
                if _finite(s, f"output share of {f} in {row}") < 0:
                    raise InvalidParameterValue(f"output share of {f} in {row} must be ≥ 0")
                total += s
            if abs(total - 1.0) > 1e-6:
                raise InvalidParameterValue(f"output mix of {row} must sum to 1, sums to {total:.6f}")


@dataclass(frozen=True)
class Scenario:
    """Everything that moves between the base year and the horizon year (see the module docstring)."""

    name: str
    horizon_year: int
    sector_growth: Mapping[str, float] = field(default_factory=dict)
    population_growth: float = 0.0
    intensity_trend: Mapping[str, float] = field(default_factory=dict)
    price_growth: Mapping[str, float] = field(default_factory=dict)
    price_elasticity: Mapping[str, float] = field(default_factory=dict)
    substitution: tuple[Substitution, ...] = ()
    input_output: InputOutput | None = None
    technologies: Mapping[str, Technology] = field(default_factory=dict)
    # Shares of heat output by source (heat_chp, heat_boilers, heat_electric_boilers); None = base shares.
    heat_source_shares: Mapping[str, float] | None = None
    # Loss and own-use rates (fractions of network supply) of electricity and heat; None = base rates.
    loss_rate: Mapping[str, float] = field(default_factory=dict)
    own_use_rate: Mapping[str, float] = field(default_factory=dict)
    # "imports": local generation follows generation_growth, imports close the gap (default);
    # "local": local generation follows demand, net imports stay at the base level.
    electricity_supply: str = "imports"
    generation_growth: float = 0.0

    def validate(self, base_year: int | None = None) -> None:
        if not self.name:
            raise InvalidParameterValue("a scenario needs a name")
        if base_year is not None and self.horizon_year <= base_year:
            raise InvalidParameterValue(
                f"horizon year {self.horizon_year} must come after the base year {base_year}"
            )
        for s, g in self.sector_growth.items():
            if "households" in expand_sector(s):
                raise InvalidParameterValue("households are driven by population_growth, not sector_growth")
            _rate(g, f"growth of {s}")
        _rate(self.population_growth, "population growth")
        for s, g in self.intensity_trend.items():
            expand_sector(s)
            _rate(g, f"intensity trend of {s}")
        for c, g in self.price_growth.items():
            _carrier(c, "price growth")
            _rate(g, f"price growth of {c}")
        for c, e in self.price_elasticity.items():
            _carrier(c, "price elasticity")
            if _finite(e, f"price elasticity of {c}") > 0:
                raise InvalidParameterValue(f"own-price elasticity of {c} must be ≤ 0, got {e}")
        seen: set[str] = set()
        for sub in self.substitution:
            sub.validate()
            for leaf in expand_sector(sub.sector):
                if leaf in seen:
                    raise InvalidParameterValue(f"two substitution rules apply to {leaf}")
                seen.add(leaf)
        if self.input_output is not None:
            self.input_output.validate()
        for row, tech in self.technologies.items():
            if row not in TECHNOLOGIES:
                raise InvalidParameterValue(f"unknown technology {row!r}; expected one of {', '.join(TECHNOLOGIES)}")
            tech.validate(row)
        if self.heat_source_shares is not None:
            total = 0.0
            for src, s in self.heat_source_shares.items():
                if src not in HEAT_SOURCES:
                    raise InvalidParameterValue(f"unknown heat source {src!r}; expected one of {HEAT_SOURCES}")
                if _finite(s, f"heat share of {src}") < 0:
                    raise InvalidParameterValue(f"heat share of {src} must be ≥ 0")
                total += s
            if abs(total - 1.0) > 1e-6:
                raise InvalidParameterValue(f"heat source shares must sum to 1, sum to {total:.6f}")
        for what, rates in (("loss rate", self.loss_rate), ("own-use rate", self.own_use_rate)):
            for c, r in rates.items():
                _carrier(c, what, ("electricity", "heat"))
                if not 0 <= _finite(r, f"{what} of {c}") < 1:
                    raise InvalidParameterValue(f"{what} of {c} must be in [0, 1), got {r}")
        for c in ("electricity", "heat"):
            if self.loss_rate.get(c, 0.0) + self.own_use_rate.get(c, 0.0) >= 1:
                raise InvalidParameterValue(f"loss and own-use rates of {c} must sum below 1")
        if self.electricity_supply not in ELECTRICITY_SUPPLY_RULES:
            raise InvalidParameterValue(
                f"electricity_supply must be one of {', '.join(ELECTRICITY_SUPPLY_RULES)}, "
                f"got {self.electricity_supply!r}"
            )
        _rate(self.generation_growth, "generation growth")


def _scale_rate(rate: float, factor: float, years: int) -> float:
    """The annual rate whose horizon index is `factor` times that of `rate`."""
    return (factor * (1.0 + rate) ** years) ** (1.0 / years) - 1.0


def drivers(scenario: Scenario, sectors: tuple[str, ...] = SECTORS) -> list[str]:
    """Names of the scalar drivers a sensitivity analysis can move (see `perturb`)."""
    names = [f"activity:{s}" for s in sectors]
    names += [f"intensity:{s}" for s in sectors]
    carriers = sorted(set(scenario.price_growth) | set(scenario.price_elasticity))
    names += [f"price:{c}" for c in carriers]
    names += [f"elasticity:{c}" for c, e in sorted(scenario.price_elasticity.items()) if e != 0]
    if scenario.input_output is not None:
        names += [f"final_demand:{s}" for s in scenario.input_output.sectors]
    names += [f"efficiency:{t}" for t in TECHNOLOGIES]
    return names


def perturb(scenario: Scenario, driver: str, factor: float, years: int) -> Scenario:
    """The scenario with one driver's horizon-year index (or, for elasticities, its value) × factor.

    Growth-type drivers (activity, intensity, price, efficiency, final demand) are moved through
    their cumulative index, so a driver whose base rate is 0 still has a sensitivity.
    """
    kind, _, key = driver.partition(":")
    if kind == "activity":
        if key == "households":
            return replace(scenario, population_growth=_scale_rate(scenario.population_growth, factor, years))
        if key not in SECTORS:
            raise InvalidParameterValue(f"unknown driver {driver!r}")
        growth = dict(scenario.sector_growth)
        growth[key] = _scale_rate(leaf_rate(scenario.sector_growth, key), factor, years)
        if scenario.input_output is not None and any(key in expand_sector(s) for s in scenario.input_output.sectors):
            raise InvalidParameterValue(f"{key} is driven by the input-output model; perturb final_demand instead")
        return replace(scenario, sector_growth=growth)
    if kind == "intensity":
        trend = dict(scenario.intensity_trend)
        trend[key] = _scale_rate(leaf_rate(scenario.intensity_trend, key), factor, years)
        return replace(scenario, intensity_trend=trend)
    if kind == "price":
        prices = dict(scenario.price_growth)
        prices[key] = _scale_rate(scenario.price_growth.get(key, 0.0), factor, years)
        return replace(scenario, price_growth=prices)
    if kind == "elasticity":
        el = dict(scenario.price_elasticity)
        el[key] = el.get(key, 0.0) * factor
        return replace(scenario, price_elasticity=el)
    if kind == "efficiency":
        techs = dict(scenario.technologies)
        tech = techs.get(key, Technology())
        techs[key] = replace(tech, efficiency_gain=_scale_rate(tech.efficiency_gain, factor, years))
        return replace(scenario, technologies=techs)
    if kind == "final_demand" and scenario.input_output is not None and key in scenario.input_output.sectors:
        io = scenario.input_output
        g = dict(io.final_demand_growth)
        g[key] = _scale_rate(io.final_demand_growth.get(key, 0.0), factor, years)
        return replace(scenario, input_output=replace(io, final_demand_growth=g))
    raise InvalidParameterValue(f"unknown driver {driver!r}")


def leaf_rate(mapping: Mapping[str, float], leaf: str) -> float:
    """A leaf's rate: its own entry, else its parent's, else 0."""
    if leaf in mapping:
        return float(mapping[leaf])
    for parent, leaves in SECTOR_PARENTS.items():
        if leaf in leaves and parent in mapping:
            return float(mapping[parent])
    return 0.0
