"""HTTP bodies: the JSON the relay answers with, the webhook delivery it documents, and reading a
request body within a bound.

The models are the one source of the OpenAPI schemas of these bodies; handlers answer by
serialising them, so the document cannot drift from what is sent.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from service.contract.errors import FieldProblem

JSON = "application/json"


class ReplyModel(BaseModel):
    """A body the relay answers with: frozen, camelCase. Written, never read: unlike the
    contract's ``WireModel`` (what the relay reads) it does not refuse unknown fields, so its
    schemas in the OpenAPI document leave ``additionalProperties`` open."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)


class Problem(ReplyModel):
    """One thing wrong with one field of a request."""

    field: str = Field(description="wire path of the field at fault, e.g. data.to")
    message: str = Field(description="what is wrong and what to do about it")


class ErrorDetail(ReplyModel):
    code: str = Field(description="machine-readable error code, e.g. INVALID_EVENT")
    message: str = Field(description="what went wrong and what to do")
    details: tuple[Problem, ...] | None = Field(
        None, description="one entry per field problem (422; 413 on the ingress)"
    )


class ErrorBody(ReplyModel):
    """Every error answer of the relay's HTTP routes."""

    error: ErrorDetail


class CommandAccepted(ReplyModel):
    """The command was published on the commands exchange and the broker confirmed it."""

    id: str = Field(description="the command's CloudEvents id")


class WebhookReceipt(ReplyModel):
    """A verified delivery: republished now (``accepted``) or already republished before."""

    status: Literal["accepted", "duplicate"]
    event_id: str | None = Field(
        None,
        description="id of the msgflash.webhook.<event> event published (accepted only)",
    )


class Liveness(ReplyModel):
    status: Literal["ok"]


class Readiness(ReplyModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, bool] = Field(description="every readiness check; all true when ready")
    warnings: tuple[str, ...] = Field(
        (),
        description="problems that fail some commands but not readiness, e.g. Tether "
        "credentials that Tether refused (its commands fail with TETHER_AUTH_FAILED)",
    )


# What the relay reads a payload's ``timestamp`` as (``replay.delivery_time``).
DeliveryTime = Annotated[str, Field(json_schema_extra={"format": "date-time"})]

_TIMESTAMP_HELP = (
    "when MsgFlash raised the event (ISO 8601); refused when older than "
    "RELAY_WEBHOOK_TOLERANCE_SECONDS. Optional: a delivery without one (MsgFlash's nested "
    "shape has none) is taken, and only the dedupe window (RELAY_WEBHOOK_DEDUPE_SECONDS) keeps "
    "a capture of it from being replayed; RELAY_WEBHOOK_REQUIRE_TIMESTAMP refuses it instead"
)


class WebhookDeliveryData(BaseModel):
    """The nested form of a delivery (MsgFlash's fundamentals page)."""

    model_config = ConfigDict(frozen=True, extra="allow", alias_generator=to_camel)

    message_id: Any = Field(None, description="string")
    status: Any = Field(None, description="string, e.g. delivered")
    timestamp: DeliveryTime | None = Field(
        None, description="read when the top level has no `timestamp`"
    )


class WebhookDelivery(BaseModel):
    """A MsgFlash webhook delivery, as documented; the relay republishes it unchanged.

    Both documented shapes are accepted: flat (the webhook guide) and with the message fields
    nested under ``data`` (the fundamentals page). Any JSON object is taken; these are the
    fields the relay reads (event, messageId, status) and the ones MsgFlash documents. Their
    types are MsgFlash's and not checked: a field of another type is republished as sent and
    not read, since a refused delivery is lost after MsgFlash's last retry. Only ``timestamp``
    is checked, as it decides whether the delivery is a replay.
    """

    model_config = ConfigDict(
        frozen=True, extra="allow", alias_generator=to_camel, title="MsgFlash webhook delivery"
    )

    event: Any = Field(None, description="string, e.g. message.delivered")
    instance_id: Any = Field(None, description="string")
    message_id: Any = Field(None, description="string")
    provider_message_id: Any = Field(None, description="string")
    to: Any = Field(None, description="string, the recipient in E.164")
    status: Any = Field(None, description="string, e.g. delivered")
    timestamp: DeliveryTime | None = Field(None, description=_TIMESTAMP_HELP)
    error: Any = Field(None, description="string, on message.failed")
    data: WebhookDeliveryData | Any = Field(
        None, description="the nested shape's message fields; read only when an object"
    )


# --- answering ----------------------------------------------------------------------------
def reply(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = model.model_dump_json(by_alias=True, exclude_none=True).encode()
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def error_reply(
    status: int,
    code: str,
    message: str,
    *,
    details: tuple[FieldProblem, ...] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    problems = tuple(Problem(field=p.field, message=p.message) for p in details or ())
    detail = ErrorDetail(code=code, message=message, details=problems or None)
    return reply(ErrorBody(error=detail), status, headers)


# --- reading ------------------------------------------------------------------------------
async def read_bounded(request: web.Request, limit: int, *, timeout: float) -> bytes | None:
    """The request body, or None when it is over ``limit`` bytes.

    Never holds more than ``limit + 1`` bytes, whatever the client sends or declares, and a
    client that trickles its body is cut off after ``timeout`` seconds (408).
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    buffer = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while len(buffer) <= limit:
                chunk = await request.content.read(limit + 1 - len(buffer))
                if not chunk:
                    return bytes(buffer)
                buffer += chunk
    except TimeoutError:
        raise _request_timeout(timeout) from None
    return None


def _request_timeout(timeout: float) -> web.HTTPRequestTimeout:
    detail = ErrorDetail(
        code="REQUEST_TIMEOUT",
        message=f"the request body did not arrive within {timeout:g} s "
        "(RELAY_HTTP_BODY_TIMEOUT): send it in one go",
    )
    text = ErrorBody(error=detail).model_dump_json(exclude_none=True)
    return web.HTTPRequestTimeout(text=text, content_type=JSON)
