"""OpenAPI documents of the REST services (Marathon v2, batch v1): served and kept honest.

    <package>/openapi.json ──load_spec()──▶ spec ──openapi_routes()──▶ GET /openapi.json (as is)
                                                                    └▶ GET /docs (render_docs())
                                              spec + app.routes ──route_mismatches()──▶ drift

`/docs` is one self-contained HTML page rendered on the server (no script, no CDN): every
operation with its parameters, request body, answers and examples, then the schemas they
reference. `route_mismatches` compares a spec with the Starlette routes that really serve
requests, so a test can fail when one changes without the other.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route

__all__ = [
    "HTTP_METHODS",
    "load_spec",
    "openapi_routes",
    "render_docs",
    "route_mismatches",
    "sample_path",
    "spec_operations",
]

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_TEMPLATE_PARAMETER = re.compile(r"{([^}/]+)}")
_SCHEMA_REF = "#/components/schemas/"
_CODE_SPAN = re.compile(r"`([^`]+)`")


def load_spec(package: str, name: str = "openapi.json") -> dict[str, Any]:
    """The OpenAPI document shipped as package data `name` of `package`."""
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def openapi_routes(spec: Mapping[str, Any]) -> list[Route]:
    """`GET /openapi.json` (the spec) and `GET /docs` (the spec rendered as HTML)."""
    page = render_docs(spec)
    document = dict(spec)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def docs(request: Request) -> Response:
        return HTMLResponse(page)

    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]


def spec_operations(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every `(METHOD, path template)` the spec documents, in document order."""
    return [
        (method.upper(), path)
        for path, item in spec.get("paths", {}).items()
        for method in HTTP_METHODS
        if method in item
    ]


def _parameters(spec: Mapping[str, Any], path: str, method: str) -> list[dict[str, Any]]:
    item = spec["paths"][path]
    found = [*item.get("parameters", []), *item[method.lower()].get("parameters", [])]
    return [_resolve(spec, parameter) for parameter in found]


def sample_path(spec: Mapping[str, Any], method: str, path: str) -> str:
    """`path` with each `{name}` replaced by its path parameter's `example` (or `x`)."""
    examples = {
        parameter["name"]: str(parameter.get("example", "x"))
        for parameter in _parameters(spec, path, method)
        if parameter.get("in") == "path"
    }
    return _TEMPLATE_PARAMETER.sub(lambda match: examples.get(match.group(1), "x"), path)


def route_mismatches(spec: Mapping[str, Any], routes: Sequence[BaseRoute]) -> list[str]:
    """How the spec and the routes disagree (empty when they agree).

    Each documented operation must reach a route that accepts its method (or a Mount), tried
    with `sample_path` in the order Starlette tries routes, and declare its path parameters;
    each method of each `Route` must be reached by at least one documented operation. HEAD
    (implied by GET) is not counted.
    """
    problems: list[str] = []
    reached: set[tuple[str, str]] = set()
    for method, path in spec_operations(spec):
        if method == "HEAD":
            continue
        declared = {p["name"] for p in _parameters(spec, path, method) if p.get("in") == "path"}
        for name in _TEMPLATE_PARAMETER.findall(path):
            if name not in declared:
                problems.append(f"{method} {path}: path parameter {{{name}}} is not declared")
        concrete = sample_path(spec, method, path)
        matched = _matching_route(routes, method, concrete)
        if matched is None:
            problems.append(f"{method} {path} is documented but no route serves {concrete}")
            continue
        reached.add((matched.path, method))
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD" and (route.path, method) not in reached:
                problems.append(f"{method} {route.path} is served but not documented")
    return problems


def _matching_route(
    routes: Sequence[BaseRoute], method: str, path: str
) -> Route | Mount | None:
    """The route Starlette would pick for `method path` (a Mount serves whatever is below it;
    its own app answers for missing files)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route if isinstance(route, Route | Mount) else None
    return None


def _resolve(spec: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """`node`, or what its local `$ref` points at."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return dict(node)
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return dict(target)


# ---------------------------------------------------------------------------------- the page

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em 2em;
color:#1d2330}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #dde3ea;padding-bottom:.2em;margin-top:2em}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f4f6f8;padding:.6em;overflow:auto;border-radius:4px}
table{border-collapse:collapse;margin:.4em 0 .8em}td,th{border:1px solid #dde3ea;
padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f4f6f8}
.op{border:1px solid #dde3ea;border-radius:6px;margin:1em 0;padding:.2em 1em .6em}
.method{display:inline-block;min-width:4.5em;text-align:center;font-weight:bold;color:#fff;
border-radius:3px;padding:.1em .4em;margin-right:.6em}
.get{background:#2f7bbf}.post{background:#3a9b5b}.put{background:#c7851c}
.patch{background:#8a5bb8}.delete{background:#c0392b}.other{background:#667}
.path{font-family:ui-monospace,monospace;font-weight:bold}.muted{color:#667}
nav ul{columns:2;list-style:none;padding:0}nav li{margin:.15em 0}
"""


def render_docs(spec: Mapping[str, Any]) -> str:
    """The whole spec as one HTML page: an index, every operation, every schema."""
    info = spec.get("info", {})
    title = str(info.get("title", "API"))
    operations = [
        (method, path, spec["paths"][path][method.lower()])
        for method, path in spec_operations(spec)
    ]
    index = "".join(
        f'<li><a href="#{_anchor(method, path)}">{_badge(method)}'
        f'<span class="path">{_e(path)}</span></a></li>'
        for method, path, _ in operations
    )
    body = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">version {_e(str(info.get("version", "")))} · OpenAPI '
        f'{_e(str(spec.get("openapi", "")))} · <a href="openapi.json">openapi.json</a></p>',
        _paragraphs(str(info.get("description", ""))),
        f"<nav><h2>Endpoints</h2><ul>{index}</ul></nav>",
    ]
    for tag in _tags(spec, operations):
        body.append(f"<h2>{_e(tag['name'])}</h2>{_paragraphs(str(tag.get('description', '')))}")
        for method, path, operation in operations:
            if (operation.get("tags") or ["other"])[0] == tag["name"]:
                body.append(_operation_html(spec, method, path, operation))
    schemas = spec.get("components", {}).get("schemas", {})
    if schemas:
        body.append("<h2>Schemas</h2>")
        for name, schema in schemas.items():
            body.append(f'<div class="op" id="schema-{_e(name)}"><h3>{_e(name)}</h3>'
                        f"{_schema_html(schema)}</div>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )


def _tags(spec: Mapping[str, Any], operations: Iterable[tuple[str, str, Any]]) -> list[Any]:
    """The declared tags, then any used but undeclared ones, in first-use order."""
    tags = list(spec.get("tags", []))
    known = {tag["name"] for tag in tags}
    for _, _, operation in operations:
        name = (operation.get("tags") or ["other"])[0]
        if name not in known:
            known.add(name)
            tags.append({"name": name})
    return tags


def _operation_html(spec: Mapping[str, Any], method: str, path: str, operation: Any) -> str:
    parts = [
        f'<div class="op" id="{_anchor(method, path)}"><h3>{_badge(method)}'
        f'<span class="path">{_e(path)}</span></h3>',
        f"<p><strong>{_text(str(operation.get('summary', '')))}</strong></p>",
        _paragraphs(str(operation.get("description", ""))),
    ]
    parameters = _parameters(spec, path, method)
    if parameters:
        rows = "".join(
            f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p.get('in', ''))}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td>{_type_html(p.get('schema', {}))}</td>"
            f"<td>{_text(str(p.get('description', '')))}</td></tr>"
            for p in parameters
        )
        parts.append("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th>"
                     f"<th>type</th><th>description</th></tr>{rows}</table>")
    request_body = operation.get("requestBody")
    if request_body:
        request_body = _resolve(spec, request_body)
        parts.append("<h4>Request body</h4>"
                     + _paragraphs(str(request_body.get("description", "")))
                     + _content_html(request_body.get("content", {})))
    responses = operation.get("responses", {})
    if responses:
        parts.append("<h4>Responses</h4>")
        for status, response in responses.items():
            response = _resolve(spec, response)
            described = _text(str(response.get("description", "")))
            parts.append(f"<p><code>{_e(status)}</code> {described}</p>"
                         + _content_html(response.get("content", {})))
    parts.append("</div>")
    return "".join(parts)


def _content_html(content: Mapping[str, Any]) -> str:
    parts = []
    for media_type, body in content.items():
        schema = body.get("schema")
        parts.append(f'<p class="muted">{_e(media_type)}'
                     + (f": {_type_html(schema)}" if schema else "") + "</p>")
        if "example" in body:
            example = body["example"]
            text = example if isinstance(example, str) else json.dumps(example, indent=2)
            parts.append(f"<pre>{_e(text)}</pre>")
    return "".join(parts)


def _schema_html(schema: Mapping[str, Any]) -> str:
    parts = [_paragraphs(str(schema.get("description", "")))]
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        rows = "".join(
            f"<tr><td><code>{_e(name)}</code></td><td>{_type_html(prop)}</td>"
            f"<td>{'yes' if name in required else ''}</td>"
            f"<td>{_text(str(prop.get('description', '')))}</td></tr>"
            for name, prop in properties.items()
        )
        parts.append("<table><tr><th>property</th><th>type</th><th>required</th>"
                     f"<th>description</th></tr>{rows}</table>")
    else:
        parts.append(f"<p>{_type_html(schema)}</p>")
    return "".join(parts)


def _type_html(schema: Mapping[str, Any]) -> str:
    """A short, linked description of a schema's type: `array of <App>`, `string (one of ...)`."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
        name = ref.removeprefix(_SCHEMA_REF)
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for combinator in ("oneOf", "anyOf", "allOf"):
        if combinator in schema:
            return f" {combinator} ".join(_type_html(s) for s in schema[combinator])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return "array of " + _type_html(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), Mapping):
        return "object of " + _type_html(schema["additionalProperties"])
    text = _e(kind)
    if "format" in schema:
        text += f" ({_e(str(schema['format']))})"
    if "enum" in schema:
        text += " one of " + ", ".join(f"<code>{_e(str(v))}</code>" for v in schema["enum"])
    if "default" in schema:
        text += f", default <code>{_e(json.dumps(schema['default']))}</code>"
    return text


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{_text(p.strip())}</p>" for p in text.split("\n\n") if p.strip())


def _text(text: str) -> str:
    """Escaped prose with `backquoted` spans set as code."""
    return _CODE_SPAN.sub(r"<code>\1</code>", _e(text))


def _badge(method: str) -> str:
    css = method.lower() if method.lower() in ("get", "post", "put", "patch", "delete") else "other"
    return f'<span class="method {css}">{_e(method)}</span>'


def _anchor(method: str, path: str) -> str:
    return _e(f"op-{method.lower()}-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-"))


def _e(text: str) -> str:
    return html.escape(text, quote=True)
