"""The bare webhook handler: what the relay's intake is compared with.

An aiohttp handler on uvloop that reads the body, checks ``X-MsgFlash-Signature`` (HMAC-SHA256,
constant-time), publishes the body as ``webhook.<event>`` on the events exchange with a
publisher confirm, and answers 200 once confirmed. No dedupe, correlation, freshness check,
metrics or logs: the least a correct intake does.

Run as ``python -m benchmarks.peers.bare_webhook`` with the relay's variable names
(``AMQP_URL``, ``RELAY_EXCHANGE_PREFIX``, ``RELAY_HTTP_PORT``, ``MSGFLASH_WEBHOOK_SECRET``);
runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
from collections.abc import Mapping

import aio_pika
import orjson
from aiohttp import web

from benchmarks.loops import new_event_loop

SIGNATURE_HEADER = "X-MsgFlash-Signature"
ACCEPTED = orjson.dumps({"status": "accepted"})


def signature_matches(secret: bytes, body: bytes, presented: str | None) -> bool:
    if presented is None:
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(presented.encode(), expected.encode())


def intake_app(secret: bytes, events: aio_pika.abc.AbstractExchange) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not signature_matches(secret, body, request.headers.get(SIGNATURE_HEADER)):
            return web.json_response({"error": "bad signature"}, status=401)
        event = orjson.loads(body).get("event", "unknown")
        message = aio_pika.Message(
            body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await events.publish(message, f"webhook.{event}", timeout=10)
        return web.Response(body=ACCEPTED, content_type="application/json")

    app = web.Application()
    app.router.add_post("/webhooks/msgflash", receive)
    return app


async def serve(env: Mapping[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connection = await aio_pika.connect(env["AMQP_URL"], timeout=10)
    channel = await connection.channel(publisher_confirms=True)
    events = await channel.get_exchange(f"{env['RELAY_EXCHANGE_PREFIX']}.events", ensure=False)
    runner = web.AppRunner(
        intake_app(env["MSGFLASH_WEBHOOK_SECRET"].encode(), events), access_log=None
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(env["RELAY_HTTP_PORT"])).start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await connection.close()


def main() -> None:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(os.environ))


if __name__ == "__main__":
    main()
