"""What the OpenAPI schema says about errors: every operation lists the statuses it
can answer with besides its success, each in the one error shape."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error. ``fields`` maps the path of each bad input to its messages.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

DESCRIPTIONS = {
    "400": "Invalid input: a body that is not JSON, nested too deep, or fails validation.",
    "401": "No credentials, or an invalid or revoked API key.",
    "403": "The role or the key's scope does not allow this.",
    "404": "No such object (or not visible to you), or an invalid page cursor.",
    "409": "Someone saved in between: reload, then save again.",
    "413": "The body is larger than the limit.",
    "415": "The body is not in a content type this operation reads.",
}


def _statuses(method: str, operation: dict[str, Any]) -> list[str]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses = ["401", "403"]
    # Writes validate and may refuse (a graph, a deletion); reads refuse bad filters.
    if method != "get" or any(p.get("in") == "query" for p in parameters):
        statuses.append("400")
    # An id in the path, or a page cursor, can name nothing.
    if any(p.get("in") == "path" or p.get("name") == "cursor" for p in parameters):
        statuses.append("404")
    if has_body:
        statuses += ["413", "415"]
    return statuses


def error_responses(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A drf-spectacular postprocessing hook: the error responses of every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(method, operation):
                responses.setdefault(status, {"description": DESCRIPTIONS[status]})
            # Errors a view declares itself (a 409) get the shape too.
            for status, response in responses.items():
                if status.startswith("4") and not response.get("content"):
                    response["content"] = content
    return result
