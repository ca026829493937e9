"""The FastStream peer: the relay's schedule job as a FastStream user would write it.

A typed subscriber (the command validated into a pydantic model), one aiohttp POST to
MsgFlash, the response published as the result on the events exchange (persistent,
mandatory, confirmed, correlation id carried over by FastStream), acked by FastStream once the
handler returns. No idempotency store, retries, pacing, metrics or per-command log line of its
own: FastStream's default logging only. Commands are CloudEvents
(``application/cloudevents+json``), which FastStream leaves undecoded, hence a decoder.

Run as ``python -m benchmarks.peers.faststream_app`` with the relay's variable names, like
``benchmarks.baseline``; runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import aiohttp
import orjson
from faststream.rabbit import Channel, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.message import RabbitMessage
from pydantic import BaseModel

from benchmarks.baseline import RESULT_ROUTING_KEY, SCHEDULE_PATH, BaselineConfig
from benchmarks.loops import new_event_loop


class TextMessage(BaseModel):
    type: str
    text: str


class ScheduleData(BaseModel):
    instanceId: str
    to: str
    scheduledAt: str
    message: TextMessage


class ScheduleCommand(BaseModel):
    specversion: str
    id: str
    source: str
    type: str
    data: ScheduleData


async def decode_cloudevent(message: RabbitMessage) -> Any:
    return orjson.loads(message.body)


def build_broker(config: BaselineConfig, http: dict[str, aiohttp.ClientSession]) -> RabbitBroker:
    broker = RabbitBroker(config.amqp_url, default_channel=Channel(prefetch_count=config.prefetch))
    queue = RabbitQueue(f"{config.prefix}.messages", declare=False)
    events = RabbitExchange(f"{config.prefix}.events", declare=False)
    url, headers = config.base_url + SCHEDULE_PATH, {"x-api-key": config.api_key}

    @broker.subscriber(queue, decoder=decode_cloudevent)
    @broker.publisher(exchange=events, routing_key=RESULT_ROUTING_KEY, mandatory=True)
    async def schedule(command: ScheduleCommand) -> bytes:
        data = command.data
        body = {
            "instanceId": data.instanceId,
            "to": data.to,
            "type": "text",
            "text": data.message.text,
            "scheduledAt": data.scheduledAt,
        }
        async with http["session"].post(url, json=body, headers=headers) as response:
            return await response.read()

    return broker


async def serve(config: BaselineConfig) -> None:
    http: dict[str, aiohttp.ClientSession] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connector = aiohttp.TCPConnector(limit=100, limit_per_host=100, keepalive_timeout=30.0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        http["session"] = session
        broker = build_broker(config, http)
        await broker.start()
        try:
            await stop.wait()
        finally:
            await broker.stop()


def main() -> None:
    config = BaselineConfig.from_env(os.environ)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(config))


if __name__ == "__main__":
    main()
