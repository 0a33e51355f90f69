"""Make a rendered folium page standalone: the script and stylesheet links it names are replaced by the files'
contents (Leaflet from the map client's pinned npm package), the images Leaflet's CSS refers to become data URIs,
and any link to the outside that is left is an error, so a report never silently needs the network."""

from __future__ import annotations

import base64
import re
from functools import cache
from pathlib import Path

from geoserver_app.config import PROJECT_ROOT

LEAFLET_DIST = PROJECT_ROOT / "web" / "node_modules" / "leaflet" / "dist"
# Pseudo-URLs the report's Map names in place of folium's CDN defaults (build.py); nothing else may be linked.
SCHEME = "cdt-inline:"
ASSETS: dict[str, Path] = {f"{SCHEME}leaflet.js": LEAFLET_DIST / "leaflet.js",
                           f"{SCHEME}leaflet.css": LEAFLET_DIST / "leaflet.css"}

_SCRIPT_SRC = re.compile(r"""<script\b[^>]*\bsrc\s*=\s*["']([^"']+)["'][^>]*>\s*</script>""", re.I)
_LINK = re.compile(r"<link\b[^>]*>", re.I)
_HREF = re.compile(r"""\bhref\s*=\s*["']([^"']+)["']""", re.I)
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)["']?\s*\)""")
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".gif": "image/gif"}


class NotStandalone(RuntimeError):
    """The page still refers to something outside itself."""


@cache
def _read(url: str) -> str:
    path = ASSETS.get(url)
    if path is None:
        raise NotStandalone(f"the report links {url!r}, which cannot be inlined (only {', '.join(ASSETS)})")
    if not path.exists():
        raise NotStandalone(f"{path} is missing: run `npm ci` in web/ (scripts/run.sh does)")
    body = path.read_text(encoding="utf-8")
    if path.suffix == ".css":
        body = _CSS_URL.sub(lambda m: f'url("{_data_uri(path.parent, m.group(1))}")', body)
    # A literal end tag inside the inlined code would close the element early.
    return re.sub(r"</(script|style)", r"<\\/\1", body, flags=re.I)


def _data_uri(folder: Path, ref: str) -> str:
    if ref.startswith(("data:", "#")):  # `#default#VML`: old IE's behaviour, no file
        return ref
    image = (folder / ref).resolve()
    if folder.resolve() not in image.parents or not image.exists():
        raise NotStandalone(f"Leaflet's CSS refers to {ref!r}, not found in {folder}")
    mime = _MIME.get(image.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(image.read_bytes()).decode('ascii')}"


def _link(match: re.Match) -> str:
    tag = match.group(0)
    href = _HREF.search(tag)
    if href is None or "stylesheet" not in tag.lower():
        if href is not None:
            raise NotStandalone(f"the report links {href.group(1)!r}")
        return tag
    return f"<style>{_read(href.group(1))}</style>"


def standalone(page: str) -> str:
    """The page with every linked script and stylesheet inlined; NotStandalone when one cannot be."""
    page = _SCRIPT_SRC.sub(lambda m: f"<script>{_read(m.group(1))}</script>", page)
    page = _LINK.sub(_link, page)
    left = external_resources(page)
    if left:
        raise NotStandalone(f"the report still loads {', '.join(left)}")
    return page


def external_resources(page: str) -> list[str]:
    """URLs that script, link, img or iframe tags of the page would fetch (empty for a standalone page)."""
    found = []
    for tag in re.findall(r"<(?:script|link|img|iframe|source)\b[^>]*>", page, flags=re.I):
        found += [u for u in re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", tag, flags=re.I)
                  if not u.startswith(("data:", "#"))]
    return found
