"""Render catalog.toml to CATALOG.md: one Markdown table per theme (the `# --- theme ---` comments of the file).

    .venv/bin/python -m planning.indicators.catalog_doc           # rewrite CATALOG.md
    .venv/bin/python -m planning.indicators.catalog_doc --check   # exit 1 when CATALOG.md is out of date
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).parent
CATALOG = HERE / "catalog.toml"
DOC = HERE / "CATALOG.md"
THEME = re.compile(r"^# --- (.+?) -*$")
CODE = re.compile(r'^code\s*=\s*"([^"]+)"')
COLUMNS = ("Code", "Name", "Unit", "Formula", "Direction", "Aggregation", "Provenance")


def _themes(source: str) -> dict[str, str]:
    """The theme of each code: the last `# --- theme ---` comment above its table."""
    theme, out = "other", {}
    for line in source.splitlines():
        if m := THEME.match(line.strip()):
            theme = m.group(1).strip()
        elif m := CODE.match(line.strip()):
            out[m.group(1)] = theme
    return out


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`" if "`" not in text else _cell(text)


def render(path: Path = CATALOG) -> str:
    source = path.read_text(encoding="utf-8")
    entries = tomllib.loads(source).get("indicator", [])
    themes = _themes(source)
    by_theme: dict[str, list[dict]] = {}
    for e in entries:
        by_theme.setdefault(themes.get(e["code"], "other"), []).append(e)
    kinds = {k: sum(e["kind"] == k for e in entries) for k in ("measure", "expr")}
    lines = [
        "# Indicator catalog",
        "",
        "Generated from `planning/indicators/catalog.toml` by `planning/indicators/catalog_doc.py`; do not edit by "
        "hand.",
        "",
        f"{len(entries)} definitions: {kinds['measure']} SQL measures (an aggregate over the rows `s` of a source "
        f"layer, `planning/indicators/sources.py`) and {kinds['expr']} expressions over other indicators "
        "(`planning/indicators/formula.py`: division by zero gives no value). A parent territory's value is "
        "recomputed from its descendants' data (`recompute`) unless the aggregation says `sum` or `mean_pop`. "
        "The families of `planning/indicators/families.py` (access, capacity, CO2) add their members "
        "programmatically and are not listed here.",
        "",
    ]
    for theme, items in by_theme.items():
        lines += [f"## {theme[0].upper()}{theme[1:]}", "", "| " + " | ".join(COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        for e in items:
            name = f"**{_cell(e['name_en'])}**<br>{_cell(e['name_ru'])}"
            if e.get("description"):
                name += f"<br>{_cell(e['description'])}"
            formula = _code(e["formula"])
            if e["kind"] == "measure":
                formula = f"measure over `{e['source']}`: {formula}"
            lines.append("| " + " | ".join((
                f"`{e['code']}`", name, _cell(e["unit"]), formula, e.get("direction", "neutral"),
                e.get("aggregation", "recompute"), _cell(e["provenance"]))) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC} is out of date: run python -m planning.indicators.catalog_doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
