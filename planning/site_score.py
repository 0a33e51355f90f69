"""Investment appeal of a site for an enterprise (pure computation, no SQL, no HTTP).

The service (`planning.site_service`) measures raw facts about a site (a cadastral parcel or a point); this module
turns each into a score 0..100 with a documented, monotone curve, groups them in four components and weighs them:

| component | factors (weight inside the component) | curve |
| --- | --- | --- |
| accessibility | `street_m` (0.30) straight line to the nearest drivable street | 100 at <= 50 m, 0 at >= 1 km |
|               | `drive_centre_min` (0.30) by car over the network to the territory centre | 100 <= 10 min, 0 >= 45 |
|               | `walk_centre_min` (0.10) on foot over the network to the same centre | 100 <= 15 min, 0 >= 90 |
|               | `railway_m` (0.15) straight line to the nearest railway | 100 <= 500 m, 0 >= 5 km |
|               | `stop_walk_min` (0.15) on foot to the nearest public transport stop | 100 <= 5 min, 0 >= 20 |
| utilities | one factor per utility kind with data, equal weights: metres to the nearest line or node of the kind (or a
|             boiler house for heat, a substation for power); halved when that object reports load >= capacity |
|             power 100 <= 300 m, 0 >= 3 km; gas, water, sewer 100 <= 200 m, 0 >= 2 km; heat 100 <= 200 m, 0 >= 1.5 km |
| zoning | `zoning` (0.7) the ПЗЗ zone: by code prefix (ZONING_SCORES), raised to 100 (60) when a production use
|          (classifier of permitted uses, group 6) is among its main (conditional) uses; `functional` (0.3) the
|          master plan's functional zone type (FUNCTIONAL_SCORES) |
| land | `land_category` the parcel's category (LAND_SCORES, codes of the Rosreestr classifier dCategories) |

Why these curves: the street leg is the access road an enterprise builds itself (beyond 1 km it is a project of its
own); 45 minutes by car is about the limit of a daily commute, 10 minutes reaches a city's labour market; a siding
within 500 m is cheap, beyond 5 km a railway no longer helps freight; a stop within 5 minutes (400 m) is the
SP 42.13330 walking norm, 20 minutes is where workers stop using it. The utility thresholds follow the distances
within which the connection rules treat a connection as standard: 300 m to the power grid in towns (Rules of
technological connection, Government Decree No. 861 of 27.12.2004, for small applicants) and 200 m to the gas
network (Rules of connection, Decree No. 1547 of 13.09.2021, first category); heat mains are dearer and lose heat,
hence a shorter zero. Beyond a threshold an enterprise pays a connection project: the score falls linearly.

Every curve is non-increasing in distance or time (more is never better), and 0..100. A factor whose fact is
unknown (no data, not visible to the caller) is left out and the other factors of its component renormalised; a
component with no known factor is unknown, left out of the composite, and the composite's weights renormalised over
the known ones: unknown is never scored 0, and the result says what was left out.

Default weights: accessibility 0.30 and utilities 0.30 (connection and logistics costs dominate the cost of
setting up a plant), zoning 0.25 (whether the use is permitted at all, or needs a change of the rules),
land category 0.15 (a category transfer is slow but possible; settlement lands defer to zoning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from layers.errors import InvalidParameterValue

COMPONENTS = ("accessibility", "utilities", "zoning", "land")
DEFAULT_WEIGHTS = {"accessibility": 0.30, "utilities": 0.30, "zoning": 0.25, "land": 0.15}

# (value at which the score is still 100, value at which it reaches 0): linear between.
STREET_M = (50.0, 1000.0)
DRIVE_CENTRE_MIN = (10.0, 45.0)
WALK_CENTRE_MIN = (15.0, 90.0)
RAILWAY_M = (500.0, 5000.0)
STOP_WALK_MIN = (5.0, 20.0)
ACCESS_WEIGHTS = {"street_m": 0.30, "drive_centre_min": 0.30, "walk_centre_min": 0.10, "railway_m": 0.15,
                  "stop_walk_min": 0.15}
UTILITY_M = {"power": (300.0, 3000.0), "gas": (200.0, 2000.0), "heat": (200.0, 1500.0), "water": (200.0, 2000.0),
             "sewer": (200.0, 2000.0)}
NO_SPARE_FACTOR = 0.5  # the nearest object reports no spare capacity: a connection needs its reinforcement

# ПЗЗ zone code prefixes (layers.styles.ZONING_PREFIXES), longest first when matched.
ZONING_SCORES = {
    "П": 100.0,  # production and utility-industrial zones: enterprises are their main use
    "Т": 60.0,  # transport: logistics, warehouses
    "О": 50.0,  # public and business: offices, services, light production as a conditional use
    "И": 40.0,  # engineering infrastructure: the networks' own objects
    "СХ": 30.0,  # agricultural: agro-processing
    "Ж": 10.0,  # residential: production only as a rare conditional use, sanitary buffers
    "СН": 10.0,  # special purpose: cemeteries, landfills
    "Р": 0.0,  # recreation: no production
}
PRODUCTION_MAIN_USE = 100.0  # group 6 "Производственная деятельность" of the classifier of permitted uses
PRODUCTION_CONDITIONAL_USE = 60.0
ZONING_WEIGHTS = {"zoning": 0.7, "functional": 0.3}
# Functional zone types of Order No. 10 (2018), layers.models.masterplan.FUNCTIONAL_ZONE_TYPES.
FUNCTIONAL_SCORES = {"industrial": 100.0, "transport": 60.0, "business": 50.0, "engineering": 40.0,
                     "agricultural": 30.0, "other": 30.0, "special": 10.0, "residential": 10.0, "recreation": 0.0,
                     "green": 0.0, "protected": 0.0, "water": 0.0, "regime": 0.0}
# Land categories (Land Code art. 7; Rosreestr classifier dCategories, cdt.land_categories).
LAND_SCORES = {
    "003003000000": (100.0, "industry, energy, transport and other special lands: meant for enterprises"),
    "003002000000": (80.0, "settlement lands: the use is decided by the zoning rules"),
    "003007000000": (30.0, "reserve lands: need a transfer to another category first"),
    "003001000000": (20.0, "agricultural lands: a transfer (Federal Law 172-FZ) is needed, often refused"),
    "003005000000": (5.0, "forest fund lands: industrial use hardly ever allowed"),
    "003004000000": (0.0, "specially protected lands: production not allowed"),
    "003006000000": (0.0, "water fund lands: production not allowed"),
}
LAND_NOT_SET = "003008000000"  # "Категория не установлена": unknown, not scored
# Latin letters typed for their Cyrillic look-alikes in zone codes.
_LOOKALIKES = str.maketrans("OTPCXHKMAEB", "ОТРСХНКМАЕВ")
GRADES = ((75.0, "high"), (50.0, "medium"), (25.0, "low"), (0.0, "poor"))


# --- curves -------------------------------------------------------------------------------------------------
def ramp_down(value: float, full: float, zero: float) -> float:
    """100 up to `full`, 0 from `zero` on, linear between: a non-increasing curve in 0..100."""
    if not full < zero:
        raise ValueError(f"full ({full}) must be below zero ({zero})")
    if value <= full:
        return 100.0
    if value >= zero:
        return 0.0
    return 100.0 * (zero - value) / (zero - full)


def utility_score(kind: str, metres: float, no_spare: bool = False) -> float:
    full, zero = UTILITY_M[kind]
    return ramp_down(metres, full, zero) * (NO_SPARE_FACTOR if no_spare else 1.0)


def _zone_prefix(code: str) -> str | None:
    normal = code.strip().upper().translate(_LOOKALIKES)
    for prefix in sorted(ZONING_SCORES, key=len, reverse=True):
        if normal.startswith(prefix):
            return prefix
    return None


def _production(uses: list[str] | None) -> bool:
    return any(str(u).strip() == "6" or str(u).strip().startswith("6.") for u in uses or ())


def zoning_score(code: str, main_uses: list[str] | None = None,
                 conditional_uses: list[str] | None = None) -> tuple[float | None, str]:
    """Score and reason of a ПЗЗ zone: the best of its prefix's score and what its permitted uses allow; None
    when neither says anything."""
    prefix = _zone_prefix(code)
    options = []
    if prefix:
        options.append((ZONING_SCORES[prefix], f"zone {code} (prefix {prefix})"))
    if _production(main_uses):
        options.append((PRODUCTION_MAIN_USE, f"zone {code}: production (group 6) is a main permitted use"))
    if _production(conditional_uses):
        options.append((PRODUCTION_CONDITIONAL_USE, f"zone {code}: production (group 6) is a conditional use"))
    if not options:
        return None, f"zone code {code!r} has no known prefix ({', '.join(ZONING_SCORES)})"
    return max(options, key=lambda o: o[0])


def functional_score(zone_type: str) -> float | None:
    return FUNCTIONAL_SCORES.get(zone_type.strip().lower())


def land_score(code: str) -> tuple[float | None, str]:
    if code in LAND_SCORES:
        return LAND_SCORES[code]
    if code == LAND_NOT_SET:
        return None, "the parcel's category is not established (003008000000)"
    return None, f"land category {code!r} is not in the classifier"


def grade(score: float) -> str:
    return next(label for floor, label in GRADES if score >= floor)


# --- results ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fact:
    """A raw fact measured by the service: a value, or None and why it is unknown; `detail` is shown as is."""

    value: float | str | None
    missing: str | None = None
    detail: dict = field(default_factory=dict)

    @property
    def known(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class Factor:
    key: str
    raw: float | str | None
    unit: str
    score: float | None
    weight: float  # inside its component, before renormalisation
    why: str
    detail: dict = field(default_factory=dict)
    missing: str | None = None  # why the fact is unknown

    def to_json(self) -> dict:
        raw = round(self.raw, 1) if isinstance(self.raw, float) else self.raw
        return {"key": self.key, "raw": raw, "unit": self.unit, "score": _round(self.score), "weight": self.weight,
                "why": self.why, **({"detail": self.detail} if self.detail else {})}


@dataclass(frozen=True)
class Component:
    key: str
    score: float | None  # None: unknown
    why: str
    factors: tuple[Factor, ...]

    @property
    def known(self) -> bool:
        return self.score is not None

    @property
    def raw(self) -> dict:
        return {f.key: f.to_json()["raw"] for f in self.factors if f.score is not None}


@dataclass(frozen=True)
class SiteScore:
    score: float
    grade: str
    components: tuple[Component, ...]
    weights: dict[str, float]  # given (defaults filled), normalised to sum 1
    weights_used: dict[str, float]  # renormalised over the known components (0 for unknown ones)
    unknown: tuple[str, ...]
    notes: tuple[str, ...]

    def to_json(self) -> dict:
        return {"score": _round(self.score), "grade": self.grade,
                "components": [{"key": c.key, "status": "ok" if c.known else "unknown", "score": _round(c.score),
                                "raw": c.raw, "weight": self.weights[c.key], "weight_used": self.weights_used[c.key],
                                "contribution": _round(c.score * self.weights_used[c.key]) if c.known else None,
                                "why": c.why, "factors": [f.to_json() for f in c.factors]}
                               for c in self.components],
                "weights": self.weights, "weights_used": self.weights_used, "unknown": list(self.unknown),
                "notes": list(self.notes)}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _fmt(value: float, unit: str) -> str:
    if unit == "m":
        return f"{value / 1000:.1f} km" if value >= 1000 else f"{value:.0f} m"
    return f"{value:.1f} {unit}"


def _ramp_factor(key: str, fact: Fact, unit: str, curve: tuple[float, float], weight: float, what: str) -> Factor:
    if not fact.known:
        return Factor(key, None, unit, None, weight, f"{what}: unknown ({fact.missing})", fact.detail, fact.missing)
    value = float(fact.value)
    full, zero = curve
    why = f"{what}: {_fmt(value, unit)} (100 at <= {_fmt(full, unit)}, 0 at >= {_fmt(zero, unit)})"
    return Factor(key, value, unit, ramp_down(value, full, zero), weight, why, fact.detail)


def _unknown_why(factors: list[Factor]) -> str:
    """The unknown factors grouped by their reason: "heat, gas: no lines within 25 km; power: ..."."""
    groups: dict[str, list[str]] = {}
    for f in factors:
        if f.score is None:
            groups.setdefault(f.missing or f.why, []).append(f.key)
    return "; ".join(f"{', '.join(keys)}: {reason}" for reason, keys in groups.items())


def _component(key: str, factors: list[Factor], empty: str, note: str | None = None) -> Component:
    known = [f for f in factors if f.score is not None and f.weight > 0]
    if not known:
        why = f"unknown: {_unknown_why(factors) or empty}"
        return Component(key, None, why + (f" ({note})" if note else ""), tuple(factors))
    total = sum(f.weight for f in known)
    score = sum(f.score * f.weight for f in known) / total
    parts = ", ".join(f"{f.key} {f.score:.0f}" for f in known)
    why = f"weighted mean of {parts}" if len(known) > 1 else known[0].why
    if len(known) < len(factors):
        why += f"; unknown, left out: {_unknown_why(factors)}"
    return Component(key, score, why + (f" ({note})" if note else ""), tuple(factors))


# --- components ---------------------------------------------------------------------------------------------
def accessibility(street_m: Fact, drive_centre_min: Fact, walk_centre_min: Fact, railway_m: Fact,
                  stop_walk_min: Fact) -> Component:
    w = ACCESS_WEIGHTS
    return _component("accessibility", [
        _ramp_factor("street_m", street_m, "m", STREET_M, w["street_m"], "nearest drivable street"),
        _ramp_factor("drive_centre_min", drive_centre_min, "min", DRIVE_CENTRE_MIN, w["drive_centre_min"],
                     "by car to the territory centre"),
        _ramp_factor("walk_centre_min", walk_centre_min, "min", WALK_CENTRE_MIN, w["walk_centre_min"],
                     "on foot to the territory centre"),
        _ramp_factor("railway_m", railway_m, "m", RAILWAY_M, w["railway_m"], "nearest railway"),
        _ramp_factor("stop_walk_min", stop_walk_min, "min", STOP_WALK_MIN, w["stop_walk_min"],
                     "on foot to the nearest public transport stop"),
    ], "no accessibility facts")


def utilities(by_kind: Mapping[str, Fact], note: str | None = None) -> Component:
    """`by_kind`: utility kind -> metres to its nearest line, node or source; `detail["no_spare"]` true when that
    object reports load >= capacity. Kinds outside UTILITY_M are refused. `note` is added to the reason."""
    factors = []
    for kind, fact in by_kind.items():
        if kind not in UTILITY_M:
            raise InvalidParameterValue(f"unknown utility kind {kind!r}; kinds: {', '.join(UTILITY_M)}")
        factor = _ramp_factor(kind, fact, "m", UTILITY_M[kind], 1.0, f"nearest {kind} network")
        if factor.score is not None and fact.detail.get("no_spare"):
            factor = Factor(kind, factor.raw, "m", factor.score * NO_SPARE_FACTOR, 1.0,
                            f"{factor.why}; no spare capacity (load >= capacity): x{NO_SPARE_FACTOR}", fact.detail)
        factors.append(factor)
    return _component("utilities", factors, "no utility kinds measured", note)


def zoning(zone: Fact, functional: Fact) -> Component:
    """`zone`: the ПЗЗ zone code (detail: main_uses, conditional_uses); `functional`: the functional zone type."""
    factors = []
    if zone.known:
        score, why = zoning_score(str(zone.value), zone.detail.get("main_uses"), zone.detail.get("conditional_uses"))
        factors.append(Factor("zoning", str(zone.value), "code", score, ZONING_WEIGHTS["zoning"], why, zone.detail))
    else:
        factors.append(Factor("zoning", None, "code", None, ZONING_WEIGHTS["zoning"],
                              f"zoning zone: unknown ({zone.missing})", zone.detail, zone.missing))
    if functional.known:
        score = functional_score(str(functional.value))
        why = (f"functional zone {functional.value}" if score is not None else
               f"functional zone type {functional.value!r} is not in the classifier of Order No. 10")
        factors.append(Factor("functional", str(functional.value), "type", score, ZONING_WEIGHTS["functional"], why,
                              functional.detail))
    else:
        factors.append(Factor("functional", None, "type", None, ZONING_WEIGHTS["functional"],
                              f"functional zone: unknown ({functional.missing})", functional.detail,
                              functional.missing))
    return _component("zoning", factors, "no zoning facts")


def land(category: Fact) -> Component:
    """`category`: the code of the parcel's land category (detail: its name)."""
    if not category.known:
        factor = Factor("land_category", None, "code", None, 1.0, f"land category: unknown ({category.missing})",
                        category.detail, category.missing)
    else:
        score, why = land_score(str(category.value))
        factor = Factor("land_category", str(category.value), "code", score, 1.0, why, category.detail)
    return _component("land", [factor], "no land category")


# --- weights and composite ----------------------------------------------------------------------------------
def check_weights(given: Mapping[str, object] | None) -> dict[str, float]:
    """The weights: DEFAULT_WEIGHTS overridden by `given` (component -> finite number >= 0), not all zero."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise InvalidParameterValue("weights must be an object of component -> number")
    unknown = sorted(set(given) - set(COMPONENTS))
    if unknown:
        raise InvalidParameterValue(f"unknown weight(s) {', '.join(map(str, unknown))}; components: "
                                    f"{', '.join(COMPONENTS)}")
    weights = dict(DEFAULT_WEIGHTS)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidParameterValue(f"weight '{key}' must be a finite number, got {value!r}")
        if value < 0:
            raise InvalidParameterValue(f"weight '{key}' must not be negative, got {value}")
        weights[key] = float(value)
    if sum(weights.values()) <= 0:
        raise InvalidParameterValue("the weights are all zero: give at least one component a positive weight")
    return weights


def composite(components: list[Component], weights: Mapping[str, object] | None = None) -> SiteScore:
    """Weighted mean of the known components; unknown ones are left out and the weights renormalised."""
    w = check_weights(weights)
    by_key = {c.key: c for c in components}
    if set(by_key) != set(COMPONENTS):
        raise ValueError(f"components must be exactly {COMPONENTS}, got {sorted(by_key)}")
    total = sum(w.values())
    normalised = {k: round(w[k] / total, 4) for k in COMPONENTS}
    known = [k for k in COMPONENTS if by_key[k].known]
    unknown = tuple(k for k in COMPONENTS if not by_key[k].known)
    if not known:
        raise InvalidParameterValue("nothing is known about the site: " +
                                    "; ".join(f"{k}: {by_key[k].why}" for k in COMPONENTS))
    known_total = sum(w[k] for k in known)
    if known_total <= 0:
        raise InvalidParameterValue(f"the components with data ({', '.join(known)}) all have weight 0: "
                                    "the site cannot be scored with these weights")
    used = {k: round(w[k] / known_total, 4) if k in known else 0.0 for k in COMPONENTS}
    score = sum(by_key[k].score * w[k] for k in known) / known_total
    notes = []
    if unknown:
        notes.append(f"unknown, left out of the score: {', '.join(unknown)}; the weights of "
                     f"{', '.join(known)} were renormalised to sum 1")
    return SiteScore(score, grade(score), tuple(by_key[k] for k in COMPONENTS), normalised, used, unknown,
                     tuple(notes))
