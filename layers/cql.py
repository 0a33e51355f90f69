"""OGC CQL2 filters (OGC API Features Part 3) compiled to a PostgreSQL/PostGIS WHERE fragment.

pygeofilter parses; this module walks its AST and emits SQL in which every value from the filter is a
bound parameter, so no user text ever becomes SQL text. Property names are looked up in the layer's
queryables and replaced by their (already quoted) SQL. Geometry literals are read in `filter-crs`
and moved to storage EPSG:4326 by `Crs.to_storage`.

pygeofilter 0.4's cql2-text grammar lags the standard, so it is extended here (same grammar file,
same transformer, a few `%override`/`%extend` rules): S_DWITHIN, T_xxx(a, b) function syntax,
T_DISJOINT/T_STARTS/..., BBOX(...) literals, INTERVAL with dates and '..', and '' inside strings.
Its cql2-json walker is likewise fed pre-built nodes for what it gets wrong (s_dwithin, t_intersects,
3-argument between, bbox order, casei patterns).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import shapely.geometry
from lark import Lark, v_args
from lark.exceptions import LarkError, VisitError
from pygeofilter import ast, values
from pygeofilter.cql2 import SPATIAL_PREDICATES_MAP
from pygeofilter.parsers.cql2_json.parser import walk_cql_json
from pygeofilter.parsers.cql2_text import parser as cql2_text_parser

from layers.crs import CRS84, Crs
from layers.errors import InvalidParameterValue

LANGS = ("cql2-text", "cql2-json", "cql-text")  # cql-text: what GDAL's OAPIF driver sends
KINDS = ("integer", "number", "string", "boolean", "datetime", "date", "geometry", "array")


@dataclass(frozen=True)
class Queryable:
    name: str  # property name as clients write it
    sql: str  # SQL expression for it, already safely quoted, e.g. 't."floors"'
    kind: str  # one of KINDS


@dataclass
class Temporal(ast.Predicate):
    """T_xxx(lhs, rhs) by its CQL2 name; pygeofilter folds T_INTERSECTS into T_OVERLAPS and lacks T_DISJOINT."""

    name: str
    lhs: Any
    rhs: Any


# CQL2 §6.4.7 definitions over [a0, a1] (left operand) and [b0, b1]; an instant has start = end.
TEMPORAL = {
    "t_after": "{a0} > {b1}",
    "t_before": "{a1} < {b0}",
    "t_contains": "{a0} < {b0} AND {a1} > {b1}",
    "t_disjoint": "NOT ({a0} <= {b1} AND {a1} >= {b0})",
    "t_during": "{a0} > {b0} AND {a1} < {b1}",
    "t_equals": "{a0} = {b0} AND {a1} = {b1}",
    "t_finishedby": "{a0} < {b0} AND {a1} = {b1}",
    "t_finishes": "{a0} > {b0} AND {a1} = {b1}",
    "t_intersects": "{a0} <= {b1} AND {a1} >= {b0}",
    "t_meets": "{a1} = {b0}",
    "t_metby": "{a0} = {b1}",
    "t_overlappedby": "{a0} > {b0} AND {a0} < {b1} AND {a1} > {b1}",
    "t_overlaps": "{a0} < {b0} AND {a1} > {b0} AND {a1} < {b1}",
    "t_startedby": "{a0} = {b0} AND {a1} > {b1}",
    "t_starts": "{a0} = {b0} AND {a1} < {b1}",
}
TEMPORAL_ALIASES = {"t_begins": "t_starts", "t_begunby": "t_startedby", "t_ends": "t_finishes",
                    "t_endedby": "t_finishedby"}  # pre-1.0 draft names pygeofilter still parses

SPATIAL = {
    ast.GeometryIntersects: "ST_Intersects", ast.GeometryDisjoint: "ST_Disjoint",
    ast.GeometryContains: "ST_Contains", ast.GeometryWithin: "ST_Within", ast.GeometryTouches: "ST_Touches",
    ast.GeometryCrosses: "ST_Crosses", ast.GeometryOverlaps: "ST_Overlaps", ast.GeometryEquals: "ST_Equals",
}

GROUP = {"integer": "number", "number": "number", "string": "string", "boolean": "boolean",
         "datetime": "time", "date": "time", "geometry": "geometry", "array": "array", "interval": "interval"}

_GRAMMAR_EXTENSION = r"""
%override SINGLE_QUOTED: /'(?:[^']|'')*'/
%override ?spatial_predicate: _binary_spatial_predicate_func "(" expression "," expression ")" -> spatial
    | "RELATE"i "(" expression "," expression "," SINGLE_QUOTED ")" -> relate_spatial_predicate
    | "S_DWITHIN"i "(" expression "," expression "," full_number ")" -> dwithin
%extend ?temporal_predicate: _binary_temporal_predicate_func "(" expression "," expression ")" -> temporal_call
%extend _binary_temporal_predicate_func: "T_DISJOINT"i | "T_STARTS"i | "T_STARTEDBY"i | "T_FINISHES"i
    | "T_FINISHEDBY"i
%override interval: "INTERVAL"i "(" SINGLE_QUOTED "," SINGLE_QUOTED ")"
%extend envelope: "BBOX"i "(" full_number "," full_number "," full_number "," full_number ")" -> bbox
"""


def _instant(text: str) -> datetime:
    """A CQL2 timestamp; CQL2 instants are UTC, so one without an offset is read as UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _interval_bound(text: str) -> date | datetime | None:
    if text == "..":
        return None
    return date.fromisoformat(text) if len(text) == 10 else _instant(text)


@v_args(inline=True)
class _TextTransformer(cql2_text_parser.CQLTransformer):
    def SINGLE_QUOTED(self, token: str) -> str:
        return token[1:-1].replace("''", "'")

    def DATETIME(self, token: str) -> datetime:  # pygeofilter's dateparser would also accept "yesterday"
        return _instant(token)

    def binary_temporal_predicate(self, lhs: Any, op: str, rhs: Any) -> Temporal:
        return Temporal(op.lower(), lhs, rhs)

    def temporal_call(self, op: str, lhs: Any, rhs: Any) -> Temporal:
        return Temporal(op.lower(), lhs, rhs)

    def spatial(self, op: str, lhs: Any, rhs: Any) -> ast.SpatialComparisonPredicate:
        return SPATIAL_PREDICATES_MAP[op.lower()](lhs, rhs)

    def dwithin(self, lhs: Any, rhs: Any, distance: float) -> ast.DistanceWithin:
        return ast.DistanceWithin(lhs, rhs, distance, "m")

    def interval(self, start: str, end: str) -> values.Interval:
        return values.Interval(_interval_bound(start), _interval_bound(end))

    def bbox(self, minx: float, miny: float, maxx: float, maxy: float) -> values.Envelope:
        return values.Envelope(minx, maxx, miny, maxy)

    def wkt__geometry_with_srid(self, srid: int, geometry: dict) -> dict:  # pygeofilter's prints to stdout
        raise InvalidParameterValue("EWKT SRID=...; is not supported; give the CRS as filter-crs")

    def wkt__multipoint_2(self, *coordinates: tuple) -> dict:  # pygeofilter's prints to stdout
        return {"type": "MultiPoint", "coordinates": coordinates}


@cache
def _text_parser() -> Lark:
    grammar = Path(cql2_text_parser.__file__).with_name("grammar.lark")
    return Lark(grammar.read_text(encoding="utf-8") + _GRAMMAR_EXTENSION, source_path=str(grammar),
                import_paths=[str(grammar.parent.parent)], parser="lalr", maybe_placeholders=False,
                transformer=_TextTransformer())


def _json_nodes(node: Any) -> Any:
    """Pre-builds the cql2-json nodes pygeofilter's walker misreads; it passes built nodes through."""
    if isinstance(node, list):
        return [_json_nodes(n) for n in node]
    if not isinstance(node, dict) or ("type" in node and "coordinates" in node):
        return node
    if "bbox" in node:  # [minx, miny, maxx, maxy]; pygeofilter reads it as (x1, x2, y1, y2)
        b = node["bbox"]
        if not (isinstance(b, list) and len(b) in (4, 6) and all(_is_number(v) for v in b)):
            raise InvalidParameterValue(f"bbox must be 4 or 6 numbers, got {b!r}")
        minx, miny, maxx, maxy = (b[0], b[1], b[2], b[3]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
        return values.Envelope(minx, maxx, miny, maxy)
    if "timestamp" in node:
        return _instant(str(node["timestamp"]))
    if "date" in node:
        return date.fromisoformat(str(node["date"]))
    if "interval" in node:
        bounds = node["interval"]
        if not (isinstance(bounds, list) and len(bounds) == 2):
            raise InvalidParameterValue(f"interval must be [start, end], got {bounds!r}")
        return values.Interval(*(_interval_bound(str(v)) for v in bounds))
    if "op" not in node:
        return node
    op, args = node["op"], _json_nodes(node.get("args", []))
    if not isinstance(args, list):
        return {"op": op, "args": args}
    built = [walk_cql_json(a) for a in args]
    name = str(op).lower()
    if name.startswith("t_") and len(built) == 2:
        return Temporal(name, *built)
    if name == "s_dwithin" and len(built) == 3:
        return ast.DistanceWithin(built[0], built[1], built[2], "m")
    if name == "between" and len(built) == 3:
        return ast.Between(built[0], built[1], built[2], False)
    if name == "like" and len(built) == 2:
        return ast.Like(built[0], built[1], False, "%", "_", "\\", False)
    return {"op": op, "args": args}


def _parse(expression: str | dict, lang: str) -> Any:
    if lang not in LANGS:
        raise InvalidParameterValue(f"filter-lang '{lang}' is not supported; use one of: {', '.join(LANGS)}")
    text_parser = _text_parser()  # outside the try: a grammar bug is ours, not a user error
    try:
        if lang == "cql2-json":
            doc = json.loads(expression) if isinstance(expression, str) else expression
            if not isinstance(doc, dict):
                raise InvalidParameterValue("a cql2-json filter must be a JSON object")
            return walk_cql_json(_json_nodes(doc))
        if not isinstance(expression, str):
            raise InvalidParameterValue(f"a {lang} filter must be text")
        return text_parser.parse(expression)
    except InvalidParameterValue:
        raise
    except VisitError as e:
        if isinstance(e.orig_exc, InvalidParameterValue):
            raise e.orig_exc from None
        raise InvalidParameterValue(f"invalid {lang} filter: {e.orig_exc}") from None
    except LarkError as e:
        raise InvalidParameterValue(f"{lang} syntax error: {str(e).splitlines()[0]}") from None
    except json.JSONDecodeError as e:
        raise InvalidParameterValue(f"cql2-json filter is not valid JSON: {e}") from None
    except Exception as e:  # noqa: BLE001 - pygeofilter raises bare ValueError/TypeError/KeyError on bad input
        raise InvalidParameterValue(f"invalid {lang} filter: {type(e).__name__}: {e}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _natural_kind(value: Any) -> str:
    for kind, types in (("boolean", bool), ("integer", int), ("number", float), ("string", str),
                        ("datetime", datetime), ("date", date), ("interval", values.Interval),
                        ("geometry", values.Geometry | values.Envelope), ("array", list)):
        if isinstance(value, types):
            return kind
    raise InvalidParameterValue(f"unsupported value {value!r}")


class _Compiler:
    def __init__(self, queryables: dict[str, Queryable], crs: Crs, prefix: str):
        self.queryables, self.crs, self.prefix = queryables, crs, prefix
        self.params: dict[str, Any] = {}
        self._names = itertools.count()

    def bind(self, value: Any) -> str:
        name = f"{self.prefix}{next(self._names)}"
        self.params[name] = value
        return name

    def prop(self, name: str) -> Queryable:
        if name not in self.queryables:
            raise InvalidParameterValue(
                f"unknown property '{name}'; queryables are: {', '.join(sorted(self.queryables))}")
        return self.queryables[name]

    # --- predicates -------------------------------------------------------------------------------------------

    def condition(self, node: Any) -> str:
        if isinstance(node, ast.And | ast.Or):
            return f"({self.condition(node.lhs)} {node.op.value} {self.condition(node.rhs)})"
        if isinstance(node, ast.Not):
            return f"(NOT {self.condition(node.sub_node)})"
        if isinstance(node, ast.Include):
            return "FALSE" if node.not_ else "TRUE"
        if isinstance(node, ast.Comparison):
            lhs, rhs, kind = self.pair(node.lhs, node.rhs, node.op.value)
            if GROUP[kind] in ("geometry", "array"):
                raise InvalidParameterValue(f"'{node.op.value}' cannot compare {kind} values"
                                            + ("; use S_EQUALS" if kind == "geometry" else ""))
            return f"({lhs} {node.op.value} {rhs})"
        if isinstance(node, ast.Between):
            lhs, low, kind = self.pair(node.lhs, node.low, "BETWEEN")
            _, high, _ = self.pair(node.lhs, node.high, "BETWEEN")
            if GROUP[kind] not in ("number", "string", "time"):
                raise InvalidParameterValue(f"BETWEEN needs numbers, strings or instants, not {kind}")
            return f"({lhs} {'NOT ' if node.not_ else ''}BETWEEN {low} AND {high})"
        if isinstance(node, ast.In):
            if not node.sub_nodes:
                raise InvalidParameterValue("IN needs at least one value")
            items = [self.pair(node.lhs, item, "IN") for item in node.sub_nodes]
            if GROUP[items[0][2]] in ("geometry", "array"):
                raise InvalidParameterValue(f"IN cannot compare {items[0][2]} values")
            return f"({items[0][0]} {'NOT ' if node.not_ else ''}IN ({', '.join(i[1] for i in items)}))"
        if isinstance(node, ast.Like):
            if self.kind_of(node.lhs) not in ("string", None):
                raise InvalidParameterValue(f"LIKE needs a string property, not {self.kind_of(node.lhs)}")
            lhs, pattern, kind = self.pair(node.lhs, node.pattern, "LIKE")
            if kind != "string":
                raise InvalidParameterValue(f"LIKE needs strings, not {kind}")
            return f"({lhs} {'NOT ' if node.not_ else ''}{'ILIKE' if node.nocase else 'LIKE'} {pattern})"
        if isinstance(node, ast.IsNull):
            return f"({self.operand(node.lhs, None, 'IS NULL')[0]} IS {'NOT ' if node.not_ else ''}NULL)"
        if isinstance(node, ast.SpatialComparisonPredicate) and type(node) in SPATIAL:
            name = f"S_{node.op.name}"
            return f"{SPATIAL[type(node)]}({self.geometry(node.lhs, name)}, {self.geometry(node.rhs, name)})"
        if isinstance(node, ast.Relate):
            if not re.fullmatch(r"[012TF*]{9}", str(node.pattern)):
                raise InvalidParameterValue(f"RELATE pattern must be 9 of 0 1 2 T F *, got {node.pattern!r}")
            a, b = self.geometry(node.lhs, "RELATE"), self.geometry(node.rhs, "RELATE")
            return f"ST_Relate({a}, {b}, CAST(:{self.bind(node.pattern)} AS text))"
        if isinstance(node, ast.DistanceWithin):
            if not _is_number(node.distance) or node.distance < 0:
                raise InvalidParameterValue(f"S_DWITHIN distance must be metres >= 0, got {node.distance!r}")
            a, b = self.geometry(node.lhs, "S_DWITHIN"), self.geometry(node.rhs, "S_DWITHIN")
            # geography: the distance is in metres whatever the CRS
            return (f"ST_DWithin(CAST({a} AS geography), CAST({b} AS geography), "
                    f"CAST(:{self.bind(float(node.distance))} AS double precision))")
        if isinstance(node, Temporal):
            name = TEMPORAL_ALIASES.get(node.name, node.name)
            if name not in TEMPORAL:
                raise InvalidParameterValue(f"unsupported temporal operator {node.name.upper()}")
            (a0, a1), (b0, b1) = self.period(node.lhs, name), self.period(node.rhs, name)
            return "(" + TEMPORAL[name].format(a0=a0, a1=a1, b0=b0, b1=b1) + ")"
        if isinstance(node, ast.Arithmetic):
            raise InvalidParameterValue("arithmetic (+ - * /) is not supported")
        if isinstance(node, ast.ArrayPredicate):
            raise InvalidParameterValue(f"array operator A_{node.op.name} is not supported")
        if isinstance(node, ast.Node):
            raise InvalidParameterValue(f"unsupported operator: {type(node).__name__}")
        raise InvalidParameterValue(f"expected a predicate, got the value {node!r}")

    # --- operands ---------------------------------------------------------------------------------------------

    def kind_of(self, node: Any) -> str | None:
        """The kind a property-like operand has; None for a literal, which takes the other side's kind."""
        if isinstance(node, ast.Attribute):
            return self.prop(node.name).kind
        if isinstance(node, ast.Function) and node.name == "lower":
            return "string"
        return None

    def pair(self, a: Any, b: Any, op: str) -> tuple[str, str, str]:
        """Two operands compared by `op`, literals bound as the property side's kind; checks they match."""
        kind = self.kind_of(a) or self.kind_of(b)
        (sa, ka), (sb, kb) = self.operand(a, kind, op), self.operand(b, kind, op)
        if GROUP[ka] != GROUP[kb]:
            raise InvalidParameterValue(f"{op} cannot compare {ka} with {kb}")
        return sa, sb, ka

    def operand(self, node: Any, kind: str | None, op: str) -> tuple[str, str]:
        if isinstance(node, ast.Attribute):
            q = self.prop(node.name)
            return q.sql, q.kind
        if isinstance(node, ast.Function):
            if node.name != "lower" or len(node.arguments) != 1:  # CASEI is parsed as lower()
                raise InvalidParameterValue(f"unsupported function {node.name.upper()}()")
            sql, inner = self.operand(node.arguments[0], "string", "CASEI")
            if inner != "string":
                raise InvalidParameterValue(f"CASEI needs a string, not {inner}")
            return f"lower({sql})", "string"
        if isinstance(node, ast.Arithmetic):
            raise InvalidParameterValue("arithmetic (+ - * /) is not supported")
        if isinstance(node, ast.Node):
            raise InvalidParameterValue(f"{type(node).__name__} cannot be used as a value in {op}")
        return self.literal(node, kind or _natural_kind(node), op)

    def literal(self, value: Any, kind: str, op: str) -> tuple[str, str]:
        """A bound, explicitly typed parameter (PostgreSQL cannot always infer a bare one's type)."""
        bad = InvalidParameterValue(f"{value!r} is not a valid {kind} value (in {op})")
        if kind in ("integer", "number"):
            if isinstance(value, str):
                try:
                    value = int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else float(value)
                except ValueError:
                    raise bad from None
            if not _is_number(value) or (isinstance(value, int) and abs(value) >= 2**63):
                raise bad
            if isinstance(value, int):
                return f"CAST(:{self.bind(value)} AS bigint)", "integer"
            return f"CAST(:{self.bind(value)} AS double precision)", "number"
        if kind == "string" and isinstance(value, str):
            return f"CAST(:{self.bind(value)} AS text)", "string"
        if kind == "boolean" and isinstance(value, bool):
            return f"CAST(:{self.bind(value)} AS boolean)", "boolean"
        if kind in ("datetime", "date"):
            if isinstance(value, str):
                try:
                    value = _interval_bound(value.strip())
                except ValueError:
                    raise bad from None
            if isinstance(value, datetime):
                return f"CAST(:{self.bind(value)} AS timestamptz)", "datetime"
            if isinstance(value, date):
                return f"CAST(:{self.bind(value)} AS date)", "date"
        if kind == "geometry" and isinstance(value, values.Geometry | values.Envelope):
            return self.geometry_literal(value), "geometry"
        if isinstance(value, values.Interval):
            raise InvalidParameterValue(f"{op}: an INTERVAL is only valid in T_ operators")
        raise bad

    def geometry(self, node: Any, op: str) -> str:
        if isinstance(node, ast.Attribute):
            q = self.prop(node.name)
            if q.kind != "geometry":
                raise InvalidParameterValue(f"{op} needs geometries; '{q.name}' is {q.kind}")
            return q.sql
        if isinstance(node, values.Geometry | values.Envelope):
            return self.geometry_literal(node)
        raise InvalidParameterValue(f"{op} needs a geometry property or literal, got {node!r}")

    def geometry_literal(self, value: values.Geometry | values.Envelope) -> str:
        geojson = value.geometry
        if "crs" in geojson:
            raise InvalidParameterValue("EWKT SRID=...; is not supported; give the CRS as filter-crs")
        try:  # reject malformed coordinates here rather than as a database error
            geojson = shapely.geometry.mapping(shapely.geometry.shape(geojson))
        except Exception as e:  # noqa: BLE001 - shapely raises many types for bad coordinates
            raise InvalidParameterValue(f"invalid geometry literal: {e}") from None
        name = self.bind(json.dumps(geojson))
        sql, extra = self.crs.to_storage(f"ST_GeomFromGeoJSON(CAST(:{name} AS text))", name)
        self.params.update(extra)
        return sql

    def period(self, node: Any, op: str) -> tuple[str, str]:
        """(start, end) SQL of a temporal operand; an instant is its own start and end."""
        if isinstance(node, values.Interval):
            start = "CAST('-infinity' AS timestamptz)" if node.start is None else self.instant(node.start, op)
            end = "CAST('infinity' AS timestamptz)" if node.end is None else self.instant(node.end, op)
            return start, end
        sql = self.instant(node, op)
        return sql, sql

    def instant(self, node: Any, op: str) -> str:
        if isinstance(node, ast.Attribute):
            q = self.prop(node.name)
            if q.kind not in ("datetime", "date"):
                raise InvalidParameterValue(f"{op.upper()} needs a datetime or date; '{q.name}' is {q.kind}")
            return q.sql
        if isinstance(node, date | str):
            return self.literal(node, "datetime", op.upper())[0]
        raise InvalidParameterValue(f"{op.upper()} needs instants or intervals, got {node!r}")


def compile_filter(expression: str | dict, lang: str, queryables: dict[str, Queryable], filter_crs: Crs = CRS84,
                   prefix: str = "q") -> tuple[str, dict]:
    """Returns (sql, params) with params named :{prefix}0, :{prefix}1 ... usable in sqlalchemy.text()."""
    if not re.fullmatch(r"[A-Za-z_]\w*", prefix):
        raise ValueError(f"bad parameter prefix {prefix!r}")
    compiler = _Compiler(queryables, filter_crs, prefix)
    return compiler.condition(_parse(expression, lang)), compiler.params
