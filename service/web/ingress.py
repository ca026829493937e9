"""``POST /v1/commands``: the HTTP door for producers that do not speak AMQP.

The body is checked exactly as the consumer will check it (``parse_command``), so a command
that could never succeed is refused here with its field errors instead of dead-lettered later.
A valid one is published unchanged on the commands exchange; 202 means the broker has it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from aiohttp import hdrs, web

from service.bus.publisher import Publisher
from service.contract.amqp import CLOUDEVENTS_JSON
from service.contract.commands import ROUTING_KEYS, RawCommand, parse_command
from service.contract.errors import (
    INVALID_EVENT,
    BrokerUnavailable,
    FieldProblem,
    InvalidCommand,
    NoQueueBound,
)
from service.contract.schemas import command_schemas
from service.tracing.spans import Tracing
from service.web.bodies import CommandAccepted, error_reply, read_bounded, reply
from service.web.credentials import BearerTokens
from service.web.operations import Header, Operation, Reply, RequestBody

log = structlog.get_logger("service.web.ingress")

RETRY_AFTER_SECONDS = "5"
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def media_type(content_type: str | None) -> str:
    """The validated content type without its parameters (``charset`` can only be UTF-8 by
    then), so the AMQP property stays short whatever the request's header carried."""
    if not content_type:
        return CLOUDEVENTS_JSON
    return content_type.partition(";")[0].strip().lower()


class CommandIngress:
    """Authenticates, validates and publishes commands sent over HTTP."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        tokens: BearerTokens,
        max_body_bytes: int,
        body_timeout: float,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing or Tracing()  # None: off
        self._publisher = publisher
        self._tokens = tokens
        self._max_body_bytes = max_body_bytes
        self._body_timeout = body_timeout

    async def accept(self, request: web.Request) -> web.Response:
        traceparent = request.headers.get("traceparent")
        with self._tracing.ingress(OPERATION.method, OPERATION.path, traceparent):
            response = await self._accept(request)
            self._tracing.answered(response.status)
            return response

    async def _accept(self, request: web.Request) -> web.Response:
        if not self._tokens.enabled:
            message = "the HTTP ingress is disabled: set RELAY_INGRESS_TOKENS to enable it"
            return error_reply(404, "INGRESS_DISABLED", message)
        grant = self._tokens.admit(request.headers.get(hdrs.AUTHORIZATION))
        if grant is None:
            message = "send Authorization: Bearer <token> with one of RELAY_INGRESS_TOKENS"
            return error_reply(401, "UNAUTHORIZED", message, headers=_CHALLENGE)
        body = await read_bounded(request, self._max_body_bytes, timeout=self._body_timeout)
        if body is None:
            return self._too_large()
        content_type = request.headers.get(hdrs.CONTENT_TYPE)
        try:
            command = parse_command(
                RawCommand(body, content_type=content_type),
                max_bytes=self._max_body_bytes,
                now=datetime.now(UTC),
            )
        except InvalidCommand as exc:
            log.info("ingress_command_rejected", error=exc.message)
            return error_reply(422, exc.code, exc.message, details=exc.details)
        if not grant.allows(command.source):
            # The idempotency key is (source, id): a token that could claim another producer's
            # source could make that producer's real command look like a duplicate.
            log.warning("ingress_source_refused", requestId=command.id, source=command.source)
            message = (
                "this token may not publish commands with this `source`: use the token issued "
                "to that producer, or add the source to the token's patterns in "
                "RELAY_INGRESS_TOKENS"
            )
            return error_reply(403, "SOURCE_NOT_ALLOWED", message)
        try:
            await self._publisher.publish_command(
                body,
                ROUTING_KEYS[command.type],
                message_id=command.id,  # at most 255 bytes: the model checks it
                content_type=media_type(content_type),
            )
        except BrokerUnavailable as exc:
            log.warning("ingress_command_not_published", requestId=command.id, error=exc.message)
            message = "the event bus is unavailable: the command was not taken, retry later"
            headers = {"Retry-After": RETRY_AFTER_SECONDS}
            return error_reply(503, exc.code, message, headers=headers)
        except NoQueueBound as exc:
            log.error("ingress_command_unroutable", requestId=command.id, error=exc.message)
            return error_reply(
                503, exc.code, exc.message, headers={"Retry-After": RETRY_AFTER_SECONDS}
            )
        log.info("ingress_command_published", requestId=command.id, type=command.type.value)
        return reply(CommandAccepted(id=command.id), 202)

    def _too_large(self) -> web.Response:
        limit = self._max_body_bytes
        problem = FieldProblem(
            "body",
            f"is over the {limit}-byte limit (RELAY_MAX_BODY_BYTES): "
            "send large media by URL (`mediaUrl`), not inline",
        )
        message = f"invalid command: body: {problem.message}"
        return error_reply(413, INVALID_EVENT, message, details=(problem,))


OPERATION = Operation(
    method="POST",
    path="/v1/commands",
    operation_id="publishCommand",
    tag="ingress",
    summary="Publish a command over HTTP",
    description=(
        "The same CloudEvents 1.0 command as on the bus (structured mode: the body is the "
        "whole envelope), validated as the consumer validates it, then published unchanged "
        "on the commands exchange under the command's routing key. 202 only after the broker "
        "confirmed. Disabled (404) unless RELAY_INGRESS_TOKENS is set. A token bound to "
        "source patterns (`TOKEN=PATTERN|PATTERN`) may only publish commands whose `source` "
        "matches one of them (403 otherwise)."
    ),
    security="ingressToken",
    body=RequestBody(
        description="A CloudEvents 1.0 command (contract §3).",
        schemas=command_schemas,
        media_types=(CLOUDEVENTS_JSON, "application/json"),
    ),
    replies=(
        Reply(202, "Published; the broker confirmed it.", CommandAccepted),
        Reply(
            401,
            "Missing or unknown bearer token (UNAUTHORIZED).",
            headers=(Header("WWW-Authenticate", "Always `Bearer`.", required=True),),
        ),
        Reply(
            403,
            "The token may not publish commands with this `source` (SOURCE_NOT_ALLOWED).",
        ),
        Reply(404, "The ingress is disabled: RELAY_INGRESS_TOKENS is not set."),
        Reply(408, "The body did not arrive in time (REQUEST_TIMEOUT)."),
        Reply(413, "The body is over RELAY_MAX_BODY_BYTES (INVALID_EVENT, field `body`)."),
        Reply(422, "Not a valid command: `details` lists each field and problem (INVALID_EVENT)."),
        Reply(
            503,
            "The broker did not confirm the publish (BROKER_UNAVAILABLE).",
            headers=(Header("Retry-After", "Seconds to wait before retrying.", required=True),),
        ),
    ),
)


def ingress_routes(ingress: CommandIngress) -> list[web.RouteDef]:
    return [web.route(OPERATION.method, OPERATION.path, ingress.accept)]
