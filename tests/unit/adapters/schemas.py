"""Validate a request body against an acquirer's published OpenAPI schemas.

OpenAPI's ``discriminator`` is not JSON Schema: a plain validator checks a
Checkout.com ``source`` only against the base schema (which requires just
``type``).  Here each discriminated schema becomes "the base, and, for each
``type`` value, the schema the mapping names", so a ``network_token`` source
must have its cryptogram fields and an ``id`` source its ``src_`` pattern.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

_PREFIX = "#/components/schemas/"


def _name(ref: str) -> str:
    return ref.removeprefix(_PREFIX)


def _swap_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        if node.get("$ref") == _PREFIX + old:
            return {**node, "$ref": _PREFIX + new}
        return {k: _swap_refs(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_swap_refs(v, old, new) for v in node]
    return node


def with_discriminators(schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas with every discriminator mapping turned into JSON Schema."""
    out = copy.deepcopy(schemas)
    for name, schema in schemas.items():
        mapping = (schema.get("discriminator") or {}).get("mapping")
        if not mapping:
            continue
        prop = schema["discriminator"]["propertyName"]
        base = f"{name}__base"
        out[base] = {k: v for k, v in schema.items() if k != "discriminator"}
        branches = []
        for value, ref in mapping.items():
            target = _name(ref)
            out[target] = _swap_refs(schemas[target], name, base)
            branches.append(
                {
                    "if": {"properties": {prop: {"const": value}}, "required": [prop]},
                    "then": {"$ref": _PREFIX + target},
                }
            )
        out[name] = {
            "allOf": [{"$ref": _PREFIX + base}, *branches],
            "properties": {prop: {"enum": sorted(mapping)}},
        }
    return out


def validate(spec: dict[str, Any], schema_name: str, body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` is a valid ``schema_name``."""
    schema = {
        "$ref": _PREFIX + schema_name,
        "components": {"schemas": with_discriminators(spec["components"]["schemas"])},
    }
    jsonschema.Draft202012Validator(schema).validate(body)


def unknown_keys(spec: dict[str, Any], schema_name: str, body: dict[str, Any]) -> set[str]:
    """Top-level keys the schema does not name (schemas that allow extra keys
    would otherwise accept a misspelt field silently)."""
    schemas = spec["components"]["schemas"]
    known: set[str] = set()
    todo = [schemas[schema_name]]
    while todo:
        node = todo.pop()
        known |= set(node.get("properties", {}))
        for part in node.get("allOf", []):
            todo.append(schemas[_name(part["$ref"])] if "$ref" in part else part)
    return set(body) - known
