"""A small schemathesis: walk a FastAPI app's OpenAPI document, generate requests from the
schemas with hypothesis (the subset of JSON Schema FastAPI emits), and mix in deliberately wrong
values. Used against the kiosk API and the reference county platform.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "'; DROP TABLE meal_record; --",
        "../../etc/passwd",
        "%00",
        "王秀英" * 50,
        "9" * 400,
        "-1",
        "1e309",
        "null",
        "\ud7ff\ue000",
        "<script>alert(1)</script>",
    ]
)


@dataclass
class Operation:
    method: str
    path: str
    params: list[dict[str, Any]] = field(default_factory=list)
    body_schema: dict[str, Any] | None = None
    body_type: str = "application/json"

    @property
    def state_changing(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def operations(spec: dict[str, Any]) -> list[Operation]:
    ops = []
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            body = op.get("requestBody", {}).get("content", {})
            body_type, body_schema = next(iter(body.items()), (None, {}))
            ops.append(
                Operation(
                    method.upper(),
                    path,
                    [p for p in op.get("parameters", []) if p.get("in") in ("path", "query")],
                    body_schema.get("schema") if body_type else None,
                    body_type or "application/json",
                )
            )
    return ops


class SchemaGen:
    """hypothesis strategies from JSON Schema (FastAPI's subset), with $ref resolution."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.local_defs: dict[str, Any] = {}  # "$defs" embedded in a body schema (openapi_extra)

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$defs" in schema:
            self.local_defs.update(schema["$defs"])
        while "$ref" in schema:
            ref = schema["$ref"]
            if ref.startswith("#/$defs/"):
                node: Any = self.local_defs[ref.rsplit("/", 1)[1]]
            else:
                node = self.spec
                for part in ref.lstrip("#/").split("/"):
                    node = node[part]
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def valid(self, schema: dict[str, Any] | None, depth: int = 0) -> st.SearchStrategy[Any]:  # noqa: PLR0911, PLR0912
        if not schema:
            return ANY_JSON
        schema = self.resolve(schema)
        if depth > 6:
            return st.none()
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return st.one_of([self.valid(s, depth + 1) for s in schema[key]])
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for s in schema["allOf"]:
                merged.update(self.resolve(s))
            return self.valid(merged, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            return st.one_of([self.valid({**schema, "type": k}, depth + 1) for k in kind])
        if kind == "string":
            fmt = schema.get("format")
            if fmt == "date":
                return st.dates().map(str)
            if fmt == "date-time":
                return st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
                    lambda d: d.isoformat()
                )
            if "pattern" in schema:
                return st.from_regex(schema["pattern"], fullmatch=True).filter(
                    lambda s: len(s) <= schema.get("maxLength", 10_000)
                )
            return st.text(
                alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                min_size=schema.get("minLength", 0),
                max_size=min(schema.get("maxLength", 40), 200),
            )
        if kind == "integer":
            return st.integers(schema.get("minimum"), schema.get("maximum"))
        if kind == "number":
            return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            return st.lists(
                self.valid(schema.get("items"), depth + 1),
                min_size=schema.get("minItems", 0),
                max_size=min(schema.get("maxItems", 4), 4),
            )
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {k: self.valid(v, depth + 1) for k, v in props.items() if k in required},
                optional={
                    k: self.valid(v, depth + 1) for k, v in props.items() if k not in required
                },
            )
        return ANY_JSON

    def wrong(self, schema: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        """Values of the wrong type or shape: what a broken client or an attacker sends."""
        return ANY_JSON | NASTY_TEXT | st.just({"uid": 12}) | st.just([None] * 3)

    def value(self, schema: dict[str, Any] | None) -> st.SearchStrategy[Any]:
        return st.one_of(self.valid(schema), self.wrong(schema))


def _path_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    from urllib.parse import quote

    return quote(text[:100], safe="") or "x"  # percent-encoded: anything may reach the route


@st.composite
def requests_for(draw: st.DrawFn, op: Operation, gen: SchemaGen) -> dict[str, Any]:
    """Keyword arguments for httpx/TestClient `request()`."""
    url = op.path
    query: dict[str, Any] = {}
    for p in op.params:
        schema = p.get("schema")
        if p["in"] == "path":
            url = url.replace("{" + p["name"] + "}", _path_text(draw(gen.value(schema))))
        elif draw(st.booleans()) or p.get("required"):
            v = draw(gen.value(schema))
            query[p["name"]] = v if isinstance(v, str | int | float) else json.dumps(v)
    kwargs: dict[str, Any] = {"method": op.method, "url": url, "params": query}
    if op.method in ("POST", "PUT", "PATCH"):
        shape = draw(st.sampled_from(["json", "json", "raw", "form", "none"]))
        body = draw(gen.value(op.body_schema))
        if shape == "json":
            kwargs["content"] = json.dumps(body, ensure_ascii=False).encode()
            kwargs["headers"] = {"content-type": "application/json"}
        elif shape == "raw":
            kwargs["content"] = draw(st.binary(max_size=300))
            kwargs["headers"] = {
                "content-type": draw(
                    st.sampled_from(["application/json", "text/plain", "application/gzip"])
                ),
                "content-encoding": draw(st.sampled_from(["gzip", "identity", "br"])),
            }
        elif shape == "form":
            kwargs["data"] = {
                draw(st.text(string.ascii_lowercase, min_size=1, max_size=10)): draw(NASTY_TEXT)
                for _ in range(draw(st.integers(0, 4)))
            }
    return kwargs
