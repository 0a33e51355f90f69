"""HTML views of the OGC API resources: plain pages a person can browse, links both ways to JSON."""

from __future__ import annotations

from flask import Response, render_template_string

BASE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ title }} · CDT</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem auto;max-width:72rem;padding:0 1rem}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}td,th{border-bottom:1px solid #ddd;padding:.25rem .5rem;
text-align:left;vertical-align:top}nav a{margin-right:1rem}code{font-size:90%}</style></head><body>
<nav><a href="/">CDT</a><a href="/collections?f=html">Collections</a><a href="/conformance?f=html">Conformance</a>
<a href="/api">API</a></nav><h1>{{ title }}</h1>{{ content|safe }}</body></html>"""

TEMPLATES = {
    "conformance.html": """<ul>{% for c in body.conformsTo %}<li><code>{{ c }}</code></li>{% endfor %}</ul>""",
    "api.html": """<p>OpenAPI 3.0: <a href="/api?f=json">JSON</a></p><table><tr><th>Path</th><th>Operations</th>
</tr>{% for path, ops in doc.paths.items() %}<tr><td><code>{{ path }}</code></td><td>{% for m, op in ops.items() %}
<b>{{ m|upper }}</b> {{ op.summary }}<br>{% endfor %}</td></tr>{% endfor %}</table>""",
    "collections.html": """<table><tr><th>Collection</th><th>Description</th><th>Access</th></tr>
{% for c in body.collections %}<tr><td><a href="/collections/{{ c.id }}?f=html">{{ c.title }}</a><br><code>{{ c.id }}
</code></td><td>{{ c.description }}</td><td>{{ c.access }}{% if c.editable %}, editable{% endif %}</td></tr>
{% endfor %}</table>""",
    "collection.html": """<p>{{ body.description }}</p><p><a href="/collections/{{ body.id }}/items?f=html">Features</a>
 · <a href="/collections/{{ body.id }}/items?f=geojson">GeoJSON</a> · <a href="/collections/{{ body.id }}/queryables">
Queryables</a></p><p>Extent (CRS84): <code>{{ body.extent.spatial.bbox[0] }}</code></p>
<h2>Coordinate reference systems</h2><ul>{% for c in body.crs %}<li><code>{{ c }}</code></li>{% endfor %}</ul>""",
    "items.html": """<p>{{ head.numberReturned }} feature(s){% if head.numberMatched is defined %} of
{{ head.numberMatched }}{% endif %}. {% for l in head.links if l.rel in ('prev', 'next') %}
<a href="{{ l.href|replace('f=geojson', 'f=html') }}">{{ l.rel }}</a> {% endfor %}</p>
<table><tr><th>id</th>{% for k in keys %}<th>{{ k }}</th>{% endfor %}</tr>{% for f in features %}<tr>
<td><a href="/collections/{{ layer.name }}/items/{{ f.id }}?f=html">{{ f.id }}</a></td>
{% for k in keys %}<td>{{ f.properties.get(k, '') if f.properties.get(k) is not none else '' }}</td>{% endfor %}
</tr>{% endfor %}</table>""",
    "item.html": """<table>{% for k, v in feature.properties.items() %}<tr><th>{{ k }}</th><td>{{ v if v is not none
 else '' }}</td></tr>{% endfor %}<tr><th>geometry</th><td>{{ (feature.geometry or {}).get('type', '') }}</td></tr>
</table><p><a href="/collections/{{ layer.name }}/items/{{ feature.id }}?f=geojson">GeoJSON</a> ·
<a href="/collections/{{ layer.name }}/items/{{ feature.id }}/history">History</a></p>""",
}


def page(title: str, template: str, headers: dict | None = None, **context) -> Response:
    if template == "items.html":
        feats = context["features"]
        context["keys"] = list(feats[0]["properties"])[:12] if feats else []
    content = render_template_string(TEMPLATES[template], **context)
    return Response(render_template_string(BASE, title=title, content=content), mimetype="text/html",
                    headers=headers)
