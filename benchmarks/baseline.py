"""The bare baseline: the fastest reasonable hand-written aio-pika loop for one command.

consume -> one aiohttp POST to MsgFlash -> publish the raw response -> ack, on uvloop with
orjson when they are installed (``make bench`` installs both). No validation,
logging, retries, metrics or idempotency store. It does the same broker work as the relay
(same prefetch, one persistent, mandatory, confirmed publish per command on the events
exchange, a consumer channel and a confirm channel), so relay/baseline measures the relay's
own code rather than RabbitMQ or the sandbox.

With ``BASELINE_BROKER=batched`` it does its broker work the way the relay does: acks
collected per 5 ms window into multiple acks (``service.bus.acks``) and publishes that wait for
the confirm only, not for the socket to drain. Against that variant, relay/baseline shows what
the relay's own code costs, apart from how it talks to the broker.

Run as ``python -m benchmarks.baseline`` with the relay's variable names (``AMQP_URL``,
``MSGFLASH_BASE_URL``, ``MSGFLASH_API_KEY``, ``RELAY_EXCHANGE_PREFIX``, ``RELAY_PREFETCH``),
so the harness hands both programs the same environment. Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

import aio_pika
import aiohttp
import aiormq
from aio_pika.abc import AbstractIncomingMessage

from benchmarks.loops import new_event_loop
from service.bus.acks import Acks

try:
    from orjson import dumps, loads
except ImportError:  # without the bench extra
    from json import loads

    def dumps(value: object) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


SCHEDULE_PATH = "/api/v1/messages/schedule"
RESULT_ROUTING_KEY = "message.scheduled"


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    amqp_url: str
    base_url: str
    api_key: str
    prefix: str
    prefetch: int
    batched: bool = False  # the relay's ack windows and confirm-only publishes

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BaselineConfig:
        missing = [name for name in ("MSGFLASH_BASE_URL", "MSGFLASH_API_KEY") if not env.get(name)]
        if missing:
            raise SystemExit(f"baseline: set {', '.join(missing)} (as for the relay)")
        return cls(
            amqp_url=env.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            base_url=env["MSGFLASH_BASE_URL"].rstrip("/"),
            api_key=env["MSGFLASH_API_KEY"],
            prefix=env.get("RELAY_EXCHANGE_PREFIX", "msgflash"),
            prefetch=int(env.get("RELAY_PREFETCH", "64")),
            batched=env.get("BASELINE_BROKER", "naive") == "batched",
        )


def to_payload(command: Mapping[str, object]) -> dict[str, object]:
    """Flatten a text ``message.schedule`` command into MsgFlash's body, trusting it blindly."""
    data = command["data"]
    assert isinstance(data, dict)
    return {
        "instanceId": data["instanceId"],
        "to": data["to"],
        "type": "text",
        "text": data["message"]["text"],
        "scheduledAt": data["scheduledAt"],
    }


async def run_baseline(config: BaselineConfig, stop: asyncio.Event) -> None:
    connection = await aio_pika.connect(config.amqp_url, timeout=10)
    # The relay's pool: 100 connections, 30 s keep-alive.
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=100, keepalive_timeout=30.0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        consumer = await connection.channel(publisher_confirms=False)
        await consumer.set_qos(prefetch_count=config.prefetch)
        publisher = await connection.channel(publisher_confirms=True)
        events = await publisher.get_exchange(f"{config.prefix}.events", ensure=False)
        underlay = await publisher.get_underlay_channel()
        queue = await consumer.get_queue(f"{config.prefix}.messages", ensure=False)
        url = config.base_url + SCHEDULE_PATH
        headers = {"x-api-key": config.api_key, "Content-Type": "application/json"}
        acks = Acks()

        async def on_message(message: AbstractIncomingMessage) -> None:
            payload = to_payload(loads(message.body))
            async with session.post(url, data=dumps(payload), headers=headers) as response:
                body = await response.read()
            result = aio_pika.Message(
                body,
                content_type="application/json",
                correlation_id=message.correlation_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            if config.batched:
                assert isinstance(underlay, aiormq.Channel) and message.delivery_tag is not None
                await underlay.basic_publish(
                    body,
                    exchange=events.name,
                    routing_key=RESULT_ROUTING_KEY,
                    properties=result.properties,
                    mandatory=True,
                    timeout=10,
                    wait=False,
                )
                acks.for_message(message).ack(message.delivery_tag)
                return
            await events.publish(result, RESULT_ROUTING_KEY, mandatory=True, timeout=10)
            await message.ack()

        await queue.consume(on_message, no_ack=False)
        await stop.wait()
    await connection.close()


def main() -> None:
    config = BaselineConfig.from_env(os.environ)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_baseline(config, stop)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main()
