"""A minimal MsgFlash upstream for the throughput and latency scenarios.

The sandbox simulates MsgFlash rule by rule and spends much of a 2-core machine doing it, so
against it every program measures partly the sandbox. This responder answers MsgFlash's send
and schedule routes with bodies recorded once, at start, from the sandbox itself (same status,
headers and JSON shape; only the message id is fresh per answer), over a bare HTTP/1.1
keep-alive protocol on uvloop when it is installed. Any other route gets a 404, counted: a
program that needs more than send and schedule is not measured here.

Run as ``python -m benchmarks.responder --port PORT``; it prints ``ready`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import ClientSession, web

from benchmarks.loops import new_event_loop
from service.providers.msgflash.sandbox.app import create_sandbox_app
from service.providers.msgflash.sandbox.config import SandboxConfig
from service.providers.msgflash.sandbox.seed import INSTANCE_MAIN
from service.settings import DEFAULT_SANDBOX_API_KEY

SEND_PATH = b"/api/v1/messages/send"
SCHEDULE_PATH = b"/api/v1/messages/schedule"
# Headers of the recorded answer left out: they depend on the moment or the body.
_DROPPED_HEADERS = {"date", "content-length", "server", "connection", "keep-alive"}
_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
)


@dataclass(frozen=True, slots=True)
class Answer:
    """One recorded answer: the status line and headers, and the body split around its id."""

    head: bytes  # status line and headers, without Content-Length and the blank line
    parts: tuple[bytes, ...]  # the body, split where the recorded message id was

    @classmethod
    def recorded(
        cls, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, message_id: str
    ) -> Answer:
        kept = [(k, v) for k, v in headers if k.lower() not in _DROPPED_HEADERS]
        lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in kept]
        return cls("\r\n".join(lines).encode(), tuple(body.split(message_id.encode())))

    def render(self, message_id: bytes) -> bytes:
        body = message_id.join(self.parts)
        return b"%s\r\nContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body)


def parse_requests(buffer: bytearray) -> Iterator[tuple[bytes, bytes]]:
    """``(method, path)`` of each complete request at the front of ``buffer``, removed from it
    as it is yielded; a partial request stays for the next read. Bodies are skipped by
    ``Content-Length`` (HTTP clients send JSON bodies with one, never chunked)."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end])
        total = end + 4 + content_length(head)
        if len(buffer) < total:
            return
        request_line = head.split(b"\r\n", 1)[0]
        method, target, _ = request_line.split(b" ", 2)
        del buffer[:total]
        yield method, target.split(b"?", 1)[0]


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class ResponderProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive: every complete request is answered at once, in order."""

    def __init__(self, answers: dict[tuple[bytes, bytes], Answer], unknown: list[bytes]) -> None:
        self._answers = answers
        self._unknown = unknown
        self._buffer = bytearray()
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        out = []
        for method, path in parse_requests(self._buffer):
            answer = self._answers.get((method, path))
            if answer is None:
                self._unknown.append(method + b" " + path)
                out.append(_NOT_FOUND)
            else:
                out.append(answer.render(str(uuid.uuid4()).encode()))
        if out and self._transport is not None:
            self._transport.write(b"".join(out))


async def record_answers() -> dict[tuple[bytes, bytes], Answer]:
    """Ask an in-process sandbox (limits off) once per route and keep its answers."""
    runner = web.AppRunner(
        create_sandbox_app(SandboxConfig(plan="unlimited", rate_limit_per_second=None))
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    body = {"instanceId": INSTANCE_MAIN, "to": "+33612345678", "type": "text", "text": "Hi"}
    later = {**body, "scheduledAt": "2099-01-01T00:00:00Z"}
    answers = {}
    try:
        async with ClientSession(headers={"x-api-key": DEFAULT_SANDBOX_API_KEY}) as http:
            for path, sent in ((SEND_PATH, body), (SCHEDULE_PATH, later)):
                url = f"http://127.0.0.1:{port}{path.decode()}"
                async with http.post(url, json=sent) as response:
                    raw = await response.read()
                    message_id = json.loads(raw)["data"]["id"]
                    answers[(b"POST", path)] = Answer.recorded(
                        response.status,
                        response.reason or "",
                        list(response.headers.items()),
                        raw,
                        message_id,
                    )
    finally:
        await runner.cleanup()
    return answers


async def serve(port: int) -> None:
    answers = await record_answers()
    unknown: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ResponderProtocol(answers, unknown), "127.0.0.1", port, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()
    if unknown:
        print(f"unanswered routes: {sorted(set(unknown))} ({len(unknown)} requests)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.responder", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
