"""The expression language of `expr` indicators: arithmetic over other indicators, evaluated on arrays of
territories at once.

Grammar (Python's syntax, a small subset, parsed with `ast` and never `eval`): numbers, names (indicator codes),
`+ - * / **`, unary minus, parentheses, comparisons inside `where()`, and the functions below. Division by zero,
`log` of zero and other undefined results give NaN (no value), never an error: a territory without kindergartens
has no "places per child", not a crash.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from layers.errors import InvalidParameterValue


def _coalesce(*values: np.ndarray) -> np.ndarray:
    out = np.array(values[0], dtype=float, copy=True)
    for v in values[1:]:
        out = np.where(np.isnan(out), v, out)
    return out


FUNCTIONS: dict[str, tuple[Callable, int | None]] = {  # name -> (implementation, arity; None: 2 or more)
    "min": (np.fmin, 2), "max": (np.fmax, 2), "abs": (np.abs, 1), "sqrt": (np.sqrt, 1), "log": (np.log, 1),
    "exp": (np.exp, 1), "where": (lambda c, a, b: np.where(c, a, b), 3), "coalesce": (_coalesce, None),
}
_BINARY = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}
_COMPARE = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
            ast.Eq: np.equal, ast.NotEq: np.not_equal}
MAX_LENGTH = 2000


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.Expression
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.asarray(_eval(self.tree.body, values), dtype=float)
        return np.where(np.isfinite(out), out, np.nan)


def parse(source: str, code: str = "?") -> Expression:
    """Parse and check an expression; every problem is an InvalidParameterValue naming the indicator."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidParameterValue(f"indicator '{code}': the formula is empty")
    if len(source) > MAX_LENGTH:
        raise InvalidParameterValue(f"indicator '{code}': the formula is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidParameterValue(f"indicator '{code}': formula syntax error at column {exc.offset}: "
                                    f"{exc.msg}") from None
    names: set[str] = set()
    _check(tree.body, code, names, in_where=False)
    return Expression(source, tree, frozenset(names))


def _check(node: ast.AST, code: str, names: set[str], in_where: bool) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise InvalidParameterValue(f"indicator '{code}': only numbers are allowed as constants")
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, code, names, in_where)
        _check(node.right, code, names, in_where)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        _check(node.operand, code, names, in_where)
    elif isinstance(node, ast.Compare) and in_where and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        _check(node.left, code, names, in_where)
        _check(node.comparators[0], code, names, in_where)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        name = node.func.id
        if name not in FUNCTIONS:
            raise InvalidParameterValue(f"indicator '{code}': unknown function '{name}'; known: "
                                        f"{', '.join(sorted(FUNCTIONS))}")
        arity = FUNCTIONS[name][1]
        if (arity is None and len(node.args) < 2) or (arity is not None and len(node.args) != arity):
            raise InvalidParameterValue(f"indicator '{code}': {name}() takes "
                                        f"{'2 or more' if arity is None else arity} arguments")
        for i, arg in enumerate(node.args):
            _check(arg, code, names, in_where=name == "where" and i == 0)
    else:
        what = "a comparison outside where()" if isinstance(node, ast.Compare) else type(node).__name__
        raise InvalidParameterValue(f"indicator '{code}': {what} is not allowed in a formula (arithmetic, "
                                    f"indicator codes and {', '.join(sorted(FUNCTIONS))}() only)")


def _eval(node: ast.AST, values: Mapping[str, np.ndarray]):
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.UnaryOp):
        v = _eval(node.operand, values)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Compare):
        return _COMPARE[type(node.ops[0])](_eval(node.left, values), _eval(node.comparators[0], values))
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return FUNCTIONS[node.func.id][0](*(_eval(a, values) for a in node.args))
