"""How each server family is asked for structured (JSON-schema) output.

- ``openai``: ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``
- ``vllm``: ``structured_outputs: {"json": schema}``
- ``llamacpp``: ``response_format: {"type": "json_object", "schema": schema}``
- ``tgi``: ``response_format: {"type": "json", "value": schema}``
- ``none``: no server-side constraint; the answer is still validated on our side.

Schemas come from msgspec with every ``$ref`` inlined, because some grammar
compilers (llama.cpp's among them) handle references poorly.
"""

from __future__ import annotations

import functools
from typing import Any, Literal, TypeAlias

import msgspec

__all__ = ["Dialect", "inline_schema", "schema_for", "structured_output_fields"]

Dialect: TypeAlias = Literal["openai", "vllm", "llamacpp", "tgi", "none"]


def inline_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Resolve local ``#/$defs/...`` references; drop ``$defs``.  Recursive schemas are refused."""
    defs = schema.get("$defs", {})

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if not ref.startswith("#/$defs/") or name not in defs:
                    raise ValueError(f"unsupported schema reference {ref!r}")
                if name in stack:
                    raise ValueError(f"recursive schema through {name!r} cannot be inlined")
                return walk(defs[name], (*stack, name))
            return {k: walk(v, stack) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v, stack) for v in node]
        return node

    out: dict[str, Any] = walk(schema, ())
    return out


@functools.lru_cache(maxsize=256)
def schema_for(answer_type: type[Any]) -> dict[str, Any]:
    """The inlined JSON schema of a msgspec type (cached: treat the result as read-only)."""
    return inline_schema(msgspec.json.schema(answer_type))


def structured_output_fields(dialect: Dialect, schema: dict[str, Any], name: str) -> dict[str, Any]:
    """Extra request-body fields that constrain the answer to ``schema`` in ``dialect``."""
    if dialect == "openai":
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            }
        }
    if dialect == "vllm":
        return {"structured_outputs": {"json": schema}}
    if dialect == "llamacpp":
        return {"response_format": {"type": "json_object", "schema": schema}}
    if dialect == "tgi":
        return {"response_format": {"type": "json", "value": schema}}
    if dialect == "none":
        return {}
    raise ValueError(f"unknown structured-output dialect {dialect!r}")
