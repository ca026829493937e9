"""What each HTTP route is, as data: method, path, headers, body and answers. Pure.

Each route module declares its ``Operation`` next to its handler and registers the handler
under the operation's method and path; ``openapi.py`` renders the same objects, so the
document lists exactly the routes that are served.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from service.web.bodies import JSON, ErrorBody

NamedSchemas = Callable[[], Mapping[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Header:
    """A request parameter: a header, or (``where="path"``) a segment of the path."""

    name: str
    description: str
    required: bool = False
    pattern: str | None = None
    where: Literal["header", "path"] = "header"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    description: str
    model: type[BaseModel] | None = ErrorBody
    media_type: str = JSON
    headers: tuple[Header, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A JSON body: one of the named schemas (``$defs`` refs are lifted into components)."""

    description: str
    schemas: NamedSchemas
    media_types: tuple[str, ...] = (JSON,)


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    operation_id: str
    tag: str
    summary: str
    description: str
    replies: tuple[Reply, ...]
    headers: tuple[Header, ...] = ()
    body: RequestBody | None = None
    security: str | None = None  # a scheme of ``SECURITY_SCHEMES``


SECURITY_SCHEMES: Mapping[str, dict[str, str]] = {
    "ingressToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "One of the tokens in RELAY_INGRESS_TOKENS (comma-separated).",
    },
}


def model_schemas(
    *models: type[BaseModel], mode: Literal["validation", "serialization"] = "validation"
) -> NamedSchemas:
    """Named JSON Schemas of pydantic models, by their wire (alias) names."""

    def schemas() -> dict[str, dict[str, Any]]:
        return {
            model.__name__: model.model_json_schema(by_alias=True, mode=mode) for model in models
        }

    return schemas
