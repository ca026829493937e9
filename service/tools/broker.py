"""The tools' broker connection: what goes wrong with it said in one line, with what to do.

The relay itself reconnects forever (``service.bus.broker``); a tool run by hand should stop at
once and say why: the broker is unreachable, or the prefix's exchanges and queues were never
declared there.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelNotFoundEntity, DeliveryError
from aiormq.exceptions import ProbableAuthenticationError

from service.contract.errors import BrokerUnavailable, NoQueueBound, RelayError
from service.settings import Settings

CONNECT_TIMEOUT = 10.0


@asynccontextmanager
async def broker_connection(settings: Settings) -> AsyncIterator[AbstractConnection]:
    """A connection to ``AMQP_URL``, closed on exit; broker errors become one-line RelayErrors."""
    url = settings.amqp_url.get_secret_value()
    try:
        connection = await aio_pika.connect(url, timeout=CONNECT_TIMEOUT)
    except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
        raise BrokerUnavailable(unreachable(url, exc)) from None
    try:
        yield connection
    except ChannelNotFoundEntity as exc:
        raise RelayError(not_declared(settings, exc), code="TOPOLOGY_NOT_DECLARED") from None
    except DeliveryError:
        raise NoQueueBound(not_bound(settings)) from None
    finally:
        await connection.close()


def shown_url(url: str) -> str:
    """The broker's address without its credentials: what a message may echo."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path or '/'}"


def unreachable(url: str, exc: BaseException) -> str:
    where = f"the broker at {shown_url(url)} (AMQP_URL)"
    if isinstance(exc, ProbableAuthenticationError):
        return f"{where} refused the user and password: check them in AMQP_URL."
    if "Connection.Close" in str(exc):  # closed during the handshake: most often the vhost
        return (
            f"{where} closed the connection while opening it: check that the vhost in "
            "AMQP_URL exists and that its user may use it."
        )
    return (
        f"cannot reach {where}: {_reason(exc)}. "
        "Start RabbitMQ (`make services`) or point AMQP_URL at yours."
    )


def not_declared(settings: Settings, exc: ChannelNotFoundEntity) -> str:
    prefix = settings.relay_exchange_prefix
    return (
        f"{_reason(exc)}: nothing is declared under RELAY_EXCHANGE_PREFIX={prefix!r} on this "
        "broker. Start the relay with that prefix (it declares its exchanges and queues), "
        "or run `msgflash-relay topology`."
    )


def not_bound(settings: Settings) -> str:
    prefix = settings.relay_exchange_prefix
    return (
        f"no queue takes this command on {settings.topology.commands_exchange!r}: its queues "
        "were deleted or "
        "never bound. Run `msgflash-relay topology` or start the relay with "
        f"RELAY_EXCHANGE_PREFIX={prefix!r}."
    )


def _reason(exc: BaseException) -> str:
    """The broker's or the OS's own words, without the exception's tuple dressing."""
    if isinstance(exc, ChannelNotFoundEntity) and exc.args:
        return str(exc.args[-1]).removeprefix("NOT_FOUND - ")
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if isinstance(exc, OSError) and exc.errno:
        code = exc.errno
    if code is not None and code > 0:
        return os.strerror(code).lower()
    if code is not None and len(exc.args) > 1:  # a resolver error: (-2, 'Name or service ...')
        return str(exc.args[1]).lower()
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    return str(exc) or type(exc).__name__
