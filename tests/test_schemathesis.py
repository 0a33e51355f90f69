"""Property-based fuzzing of the whole HTTP API from its own OpenAPI (`/api`) with Schemathesis: no 5xx, ever.

Every operation of `/api` is fuzzed with Schemathesis' generated cases (schema-conforming and schema-violating
ones, Hypothesis underneath), as anonymous and with a federal Bearer token (who may write everywhere), and each
response goes through the `not_a_server_error` check. Path parameters are often pinned to real values (a real
collection, a real feature id, a real tile matrix set) so that generation gets past "no such collection" to the
handlers' own parsing, access checks and SQL; the rest is generated.

- Default run: about 500 requests in all (well under a minute).
- Full run (slow): at least 5,000 requests, only with `CDT_FULL_FUZZ=1` (skipped otherwise):
  `CDT_FULL_FUZZ=1 .venv/bin/python -m pytest -q tests/test_schemathesis.py`

The requests are counted where the app receives them (a WSGI wrapper), and the count must reach the target. The
fuzzer writes (creates, replaces, deletes features, revokes tokens ...): the module runs on its own throwaway
database with the demo city and its own users and tokens, so nothing it leaves behind reaches the database other
tests use. Its tokens are un-revoked after every write, so the federal run stays federal throughout.
"""

from __future__ import annotations

import math
import os
import time
import traceback
from dataclasses import dataclass, field

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import text

from geoserver_app.app import create_app
from geoserver_app.config import Config
from layers.db import engine_for
from tests.conftest import DATA, TEST_USERS, bearer, make_test_users

FULL = os.environ.get("CDT_FULL_FUZZ") == "1"
DEFAULT_TARGET = 500  # requests in all, both callers together
FULL_TARGET = 5000
CALLERS = ("anonymous", "t_federal")
MAX_ROUNDS = 20  # passes over every operation before giving up on reaching the target
TOKEN_NAME = "schemathesis"
WRITE_WEIGHT = 5  # writes of features get this many times the examples of another operation: the deepest paths


@dataclass
class Counter:
    """What the app received: requests by caller and status."""

    total: int = 0
    by_status: dict[int, int] = field(default_factory=dict)

    def add(self, status: int) -> None:
        self.total += 1
        self.by_status[status] = self.by_status.get(status, 0) + 1


class Counting:
    """WSGI wrapper: counts each request the app answers; after each write puts the fuzz users' tokens back
    (the fuzzer may revoke them, federal may revoke any token) so the federal run keeps its rights."""

    def __init__(self, wsgi_app, engine):
        self.wsgi_app, self.engine = wsgi_app, engine
        self.counter = Counter()

    def __call__(self, environ, start_response):
        seen: list[int] = []

        def start(status, headers, exc_info=None):
            seen.append(int(status.split()[0]))
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        finally:
            self.counter.add(seen[0] if seen else 0)
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD", "OPTIONS"):
                with self.engine.begin() as conn:
                    conn.execute(text("UPDATE cdt.api_tokens SET revoked_at = NULL WHERE name = :n "
                                      "AND revoked_at IS NOT NULL"), {"n": TOKEN_NAME})
                    conn.execute(text("UPDATE cdt.users SET active = true WHERE login = ANY(:l) AND NOT active"),
                                 {"l": list(TEST_USERS)})


@dataclass
class Fuzz:
    app: object
    engine: object
    schema: object
    wsgi: Counting
    tokens: dict[str, str]
    pins: dict[str, list]  # path parameter -> real values to pin it to now and then
    exhausted: set[str] = field(default_factory=set)  # operation+mode pairs with nothing to generate


def _make_tokens(engine) -> dict[str, str]:
    return make_test_users(engine, TOKEN_NAME)


def _seed(client, token: str) -> None:
    """A few features in each editable collection (the demo has none), for the edits and history to find."""
    for collection, (gtype, props) in SEEDS.items():
        for i in range(6):
            x, y = 39.86 + 0.01 * i, 59.2
            coords = {"Point": [x, y], "LineString": [[x, y], [x + 0.005, y + 0.005]],
                      "Polygon": [[[x, y], [x + 0.005, y], [x + 0.005, y + 0.005], [x, y]]]}[gtype]
            resp = client.post(f"/collections/{collection}/items", headers=bearer(token), content_type=GEOJSON,
                               json={"type": "Feature", "geometry": {"type": gtype, "coordinates": coords},
                                     "properties": props})
            assert resp.status_code == 201, resp.get_data(as_text=True)


def _pins(engine) -> dict[str, list]:
    from layers import registry, tiles

    ids: list[str] = []
    with engine.connect() as conn:
        for layer in registry.all_layers():
            ids += [str(i) for i in conn.execute(text(f"SELECT id FROM {layer.qualified_table} ORDER BY id LIMIT 3"))
                    .scalars()]
    return {"collectionId": [layer.name for layer in registry.all_layers()],
            "featureId": sorted(set(ids), key=int),
            "tileMatrixSetId": tiles.tile_matrix_set_ids(),
            "version": ["1", "2"]}


@pytest.fixture(scope="module")
def fuzz(make_database):
    from layers.ingest.demo import load_demo

    url = make_database()
    engine = engine_for(url)
    load_demo(engine, DATA, actor="test:demo", echo=lambda _m: None)
    tokens = _make_tokens(engine)
    app = create_app(Config.from_env(), database_url=url)
    _seed(app.test_client(), tokens["t_federal"])
    wsgi = Counting(app.wsgi_app, engine)
    app.wsgi_app = wsgi
    schema = schemathesis.openapi.from_wsgi("/api", app)
    yield Fuzz(app, engine, schema, wsgi, tokens, _pins(engine))
    engine.dispose()


# --- GeoJSON Feature bodies -------------------------------------------------------------------------------
# The OpenAPI document declares the body of a write as any JSON object, which almost never makes a feature: for
# the writes of the editable collections the fuzzer also draws Feature bodies whose geometry and properties are
# sometimes valid (near Vologda, the right types, known codes) and often not (far away, open rings, wrong types,
# unknown properties, huge numbers, NULs), so generation reaches the edits' validation, access checks and SQL.
GEOJSON = "application/geo+json"
ITEMS_PATH = "/collections/{collectionId}/items"
EDITABLE = ("functional_zones", "planned_facilities", "zoning_zones", "utility_nodes", "utility_lines")
SEEDS = {"functional_zones": ("Polygon", {"zone_type": "residential"}),
         "planned_facilities": ("Point", {"type_code": "school"}),
         "zoning_zones": ("Polygon", {"zone_code": "Ж-1"}),
         "utility_nodes": ("Point", {"kind": "heat"}),
         "utility_lines": ("LineString", {"kind": "power"})}
KNOWN_VALUES = {"type_code": ["school", "kindergarten", "polyclinic", "nonexistent"],
                "kind": ["heat", "power", "gas", "water", "sewer", "steam"],
                "status": ["existing", "planned", "reconstruction", "dreamt"],
                "zone_type": ["residential", "business", "green"], "zone_code": ["Ж-1", "П-2"]}
_near = st.tuples(st.floats(39.85, 39.95), st.floats(59.19, 59.25))
_anywhere = st.tuples(st.floats(-200, 200, allow_nan=False), st.floats(-100, 100, allow_nan=False))
_position = st.one_of(_near.map(list), _anywhere.map(list),
                      st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4))
_square = st.tuples(st.floats(39.85, 39.95), st.floats(59.19, 59.25), st.floats(1e-6, 0.02)).map(
    lambda t: [[t[0], t[1]], [t[0] + t[2], t[1]], [t[0] + t[2], t[1] + t[2]], [t[0], t[1] + t[2]], [t[0], t[1]]])
_ring = st.one_of(_square, st.lists(_position, max_size=6).map(lambda pts: pts + pts[:1]),
                  st.lists(_position, max_size=5))
_line = st.one_of(_square.map(lambda ring: ring[:3]), st.lists(_position, max_size=5))
_polygon = st.lists(_ring, min_size=1, max_size=2)
_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=20), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def _geometries(depth: int = 1):
    simple = [st.fixed_dictionaries({"type": st.just("Point"), "coordinates": _position}),
              st.fixed_dictionaries({"type": st.just("LineString"), "coordinates": _line}),
              st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": _polygon}),
              st.fixed_dictionaries({"type": st.just("MultiPoint"), "coordinates": st.lists(_position, max_size=3)}),
              st.fixed_dictionaries({"type": st.just("MultiLineString"), "coordinates": st.lists(_line, max_size=3)}),
              st.fixed_dictionaries({"type": st.just("MultiPolygon"), "coordinates": st.lists(_polygon, max_size=2)}),
              st.none(), _json]
    if depth:
        simple.append(st.fixed_dictionaries({"type": st.just("GeometryCollection"),
                                             "geometries": st.lists(_geometries(depth - 1), max_size=2)}))
    return st.one_of(simple)


def _value(name: str, kind: str):
    typed = {"integer": st.integers(-(2**31), 2**31 - 1) | st.integers(),
             "number": st.floats(allow_nan=False, allow_infinity=False), "string": st.text(max_size=30),
             "boolean": st.booleans(),
             "array": st.lists(st.text(max_size=10), max_size=3), "date": st.dates().map(str) | st.text(max_size=12),
             "datetime": st.datetimes().map(lambda d: d.isoformat()) | st.text(max_size=12),
             "object": st.dictionaries(st.text(max_size=8), _json, max_size=3)}[kind]
    if name in KNOWN_VALUES:
        typed = st.sampled_from(KNOWN_VALUES[name]) | typed
    return st.one_of(typed, typed, _json)  # mostly of the right type


def _bodies(collection: str, partial: bool):
    from layers import edits, registry

    props = edits.editable_properties(registry.get(collection))
    required = {} if partial else {n: _value(n, p.kind) for n, p in props.items()
                                   if not p.nullable and p.column.server_default is None}
    optional = {n: _value(n, p.kind) for n, p in props.items() if n not in required}
    properties = st.fixed_dictionaries(required, optional=optional) | _json
    gtype = SEEDS[collection][0]
    fitting = st.fixed_dictionaries({"type": st.just(gtype), "coordinates": {
        "Point": _near.map(list), "LineString": _square.map(lambda ring: ring[:3]),
        "Polygon": _square.map(lambda ring: [ring])}[gtype]})
    body = {"geometry": st.one_of(fitting, fitting, _geometries()), "properties": properties}
    if partial:  # a merge patch: any of them
        return st.fixed_dictionaries({}, optional={**body, "type": st.just("Feature")})
    return st.fixed_dictionaries({"type": st.sampled_from(["Feature"] * 5 + ["FeatureCollection"]), **body})


def _without_query(case):
    """The handlers of writes take no query parameters but `f`, though /api lists those of the reads for them."""
    case.query = {}
    return case


def _writes_features(operation, mode: GenerationMode) -> bool:
    """POST, PUT and PATCH of features: drawn with Feature bodies too (positive mode), and given more examples."""
    return (mode == GenerationMode.POSITIVE and operation.method.upper() in ("POST", "PUT", "PATCH")
            and operation.path in (ITEMS_PATH, ITEMS_PATH + "/{featureId}"))


def _strategy(operation, mode: GenerationMode, pins: dict[str, list]):
    """Cases of the operation: fully generated, or with some of its path parameters pinned to real values (and,
    for writes of features, with a drawn GeoJSON Feature as the body)."""
    names = [p for p in pins if "{" + p + "}" in operation.path]
    options = [operation.as_strategy(mode)]
    if names:
        pinned = st.fixed_dictionaries({n: st.sampled_from(pins[n]) for n in names})
        options.append(pinned.flatmap(lambda fixed: operation.as_strategy(mode, path_parameters=fixed)))
        if len(names) > 1:  # only the first pinned (a real collection), the rest generated
            first = names[0]
            options.append(st.sampled_from(pins[first]).flatmap(
                lambda value: operation.as_strategy(mode, path_parameters={first: value})))
    method = operation.method.upper()
    if _writes_features(operation, mode):

        def feature_case(collection: str):
            fixed = {"collectionId": st.just(collection)}
            if "{featureId}" in operation.path:
                fixed["featureId"] = st.integers(1, 12).map(str)
            return st.tuples(st.fixed_dictionaries(fixed), _bodies(collection, method == "PATCH")).flatmap(
                lambda pb: operation.as_strategy(mode, path_parameters=pb[0], body=pb[1], media_type=GEOJSON)
            ).map(_without_query)

        writes = st.sampled_from(EDITABLE).flatmap(feature_case)
        options += [writes] * (2 * len(options))  # twice as often as the others together
    return st.one_of(options)


@dataclass
class Report:
    requests: int = 0
    seconds_in_app: float = 0.0
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # cases the client could not even send
    per_operation: dict[str, int] = field(default_factory=dict)  # answered requests by operation
    by_status: dict[int, int] = field(default_factory=dict)


def _run(fuzz: Fuzz, caller: str, target: int) -> Report:
    headers = {} if caller == "anonymous" else bearer(fuzz.tokens[caller])
    shown = {} if caller == "anonymous" else {"Authorization": f"Bearer <token of {caller}>"}
    operations = [result.ok() for result in fuzz.schema.get_all_operations()]
    assert len(operations) > 30, "the OpenAPI document lost its operations"
    start, statuses_before = fuzz.wsgi.counter.total, dict(fuzz.wsgi.counter.by_status)
    report = Report()
    seen_failures: set[tuple] = set()

    def call(case) -> None:
        began = time.perf_counter()
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001 - a case the test client cannot send (e.g. a non-latin-1 header)
            if len(report.errors) < 20:
                report.errors.append(f"{case.operation.label}: {type(exc).__name__}: {exc}")
            return
        finally:
            report.seconds_in_app += time.perf_counter() - began
        label = case.operation.label
        report.per_operation[label] = report.per_operation.get(label, 0) + 1
        try:
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
        except (AssertionError, BaseExceptionGroup):  # a Failure, or a FailureGroup of them
            key = (case.operation.label, response.status_code)
            if key not in seen_failures:
                seen_failures.add(key)
                body = response.content[:500].decode(errors="replace")
                report.failures.append(f"{case.operation.label} -> {response.status_code} {body}\n  "
                                       f"{case.as_curl_command(headers=shown)}")

    # Each operation in both modes (Schemathesis' negative mode: values that violate the schema), round after
    # round with fresh random draws until the target is reached. A mode with nothing to generate for an
    # operation (no parameter that can be made invalid) is dropped after its first try.
    pairs = [(operation, mode, _strategy(operation, mode, fuzz.pins)) for operation in operations
             for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
             if operation.label + mode not in fuzz.exhausted]
    rounds = 0
    while fuzz.wsgi.counter.total - start < target and rounds < MAX_ROUNDS and pairs:
        rounds += 1
        remaining = target - (fuzz.wsgi.counter.total - start)
        weights = [WRITE_WEIGHT if _writes_features(operation, mode) else 1 for operation, mode, _ in pairs]
        base = remaining / sum(weights)
        for (operation, mode, strategy), weight in zip(pairs, weights, strict=True):
            examples = max(1, math.ceil(base * weight))

            @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                                 phases=[Phase.explicit, Phase.generate], verbosity=Verbosity.quiet,
                                 suppress_health_check=list(HealthCheck))
            @hypothesis.given(case=strategy)
            def run(case):
                call(case)

            try:
                run()
            except hypothesis.errors.Unsatisfiable:
                fuzz.exhausted.add(operation.label + mode)  # nothing to generate for this operation in this mode
            except Exception:  # noqa: BLE001 - a generation problem of one operation: report, go on
                report.errors.append(f"{operation.label} ({mode}): {traceback.format_exc(limit=3)}")
                fuzz.exhausted.add(operation.label + mode)
        pairs = [p for p in pairs if p[0].label + p[1] not in fuzz.exhausted]
    report.requests = fuzz.wsgi.counter.total - start
    report.by_status = {k: n - statuses_before.get(k, 0) for k, n in sorted(fuzz.wsgi.counter.by_status.items())
                        if n > statuses_before.get(k, 0)}
    missed = [op.label for op in operations if not report.per_operation.get(op.label)]
    assert not missed, f"operations never exercised: {missed}; errors: {report.errors}"
    return report


def _check(fuzz: Fuzz, caller: str, target: int) -> None:
    began = time.monotonic()
    report = _run(fuzz, caller, target)
    elapsed = time.monotonic() - began
    print(f"\nschemathesis as {caller}: {report.requests} requests over {len(report.per_operation)} operations in "
          f"{elapsed:.1f} s ({report.seconds_in_app:.1f} s of them in the app); by status: {report.by_status}; "
          f"{len(report.errors)} cases not sendable or not generated")
    assert not report.failures, f"{len(report.failures)} server errors:\n" + "\n\n".join(report.failures)
    assert report.requests >= target, f"only {report.requests} requests reached the app (target {target})"


@pytest.mark.parametrize("caller", CALLERS)
def test_no_server_error(fuzz, caller):
    """The default, modest sample: about DEFAULT_TARGET requests over both callers."""
    _check(fuzz, caller, DEFAULT_TARGET // len(CALLERS))


@pytest.mark.skipif(not FULL, reason="the full fuzz runs with CDT_FULL_FUZZ=1")
@pytest.mark.parametrize("caller", CALLERS)
def test_no_server_error_full(fuzz, caller):
    """At least FULL_TARGET generated requests over both callers (CDT_FULL_FUZZ=1)."""
    _check(fuzz, caller, FULL_TARGET // len(CALLERS))
