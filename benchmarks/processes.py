"""The programs under measurement as child processes: the upstreams (the sandbox, the minimal
responder), the relay, the bare loop and the peers.

Each runs in its own interpreter so that none competes with the harness's event loop; their
output goes to a file in the workspace, shown (last lines) when one of them misbehaves.
Resource figures come from ``/proc``: peak RSS (``VmHWM``) and CPU time (``utime + stime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from benchmarks.workspace import Workspace
from service.contract.amqp import Topology
from service.settings import DEFAULT_SANDBOX_API_KEY

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT = 60.0


class ChildFailed(RuntimeError):
    """A child process exited early or never became ready; the message holds its last lines."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Usage:
    """What a process has used so far: peak resident memory and CPU seconds."""

    peak_rss_mb: float
    cpu_seconds: float


def process_usage(pid: int) -> Usage:
    """Peak RSS from ``/proc/PID/status`` (VmHWM) and user+system CPU from ``/proc/PID/stat``."""
    peak_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])
    return Usage(peak_rss_mb=peak_kb / 1024, cpu_seconds=(utime + stime) / CLOCK_TICKS)


def cpu_seconds_of(command_name: str) -> float:
    """CPU seconds used so far by every process named ``command_name`` (``/proc/PID/comm``),
    e.g. RabbitMQ's ``beam.smp``: read only, to say how much of the machine the broker took."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != command_name:
                continue
            total += process_usage(int(entry.name)).cpu_seconds
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of the whole machine so far, all cores (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


class ChildProcess:
    """A subprocess with its output in a log file; ``stop`` terminates it, then kills it."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "start() first"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            spawn = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *self.argv,
                    env={**os.environ, **self.env},
                    stdout=out,
                    stderr=out,
                    stdin=asyncio.subprocess.DEVNULL,
                )
            )
            try:
                self.process = await asyncio.shield(spawn)
            except asyncio.CancelledError:
                # Cancelled while spawning: the child may exist already; keep hold of it so
                # that stop() ends it instead of leaving an orphan behind.
                self.process = await spawn
                raise

    def usage(self) -> Usage:
        return process_usage(self.pid)

    def ensure_running(self) -> None:
        if not self.running:
            code = self.process.returncode if self.process else None
            raise ChildFailed(f"{self.name} exited (code {code}):\n{self.tail()}")

    async def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the relay drains), then SIGKILL if it is still there after ``timeout``."""
        process = self.process
        if process is None or process.returncode is not None:
            return process.returncode if process else None
        process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            return await process.wait()

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])


async def wait_until_ok(child: ChildProcess, url: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``url`` until it answers 200 (the child's readiness), failing fast if it died."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            child.ensure_running()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise ChildFailed(f"{child.name} not ready within {timeout:g} s:\n{child.tail()}")


class Upstream(Protocol):
    """What the programs call as MsgFlash: the sandbox, or the minimal responder."""

    url: str

    async def reset(self) -> None: ...

    async def stop(self) -> None: ...


class Responder:
    """``benchmarks.responder`` in a child process: send and schedule only, no state."""

    def __init__(self, child: ChildProcess, url: str) -> None:
        self.child = child
        self.url = url

    @classmethod
    async def start(cls, workspace: Workspace) -> Responder:
        port = free_port()
        argv = [sys.executable, "-m", "benchmarks.responder", "--port", str(port)]
        child = ChildProcess("responder", argv, {}, workspace.path("responder.log"))
        await child.start()
        deadline = time.monotonic() + READY_TIMEOUT
        while "ready" not in child.tail():
            child.ensure_running()
            if time.monotonic() > deadline:
                await child.stop()
                raise ChildFailed(f"responder not ready within {READY_TIMEOUT:g} s")
            await asyncio.sleep(0.05)
        return cls(child, f"http://127.0.0.1:{port}")

    async def reset(self) -> None:
        """Nothing to reset: every answer is the same."""

    def usage(self) -> Usage:
        return self.child.usage()

    async def stop(self) -> None:
        await self.child.stop()


class Sandbox:
    """``msgflash-relay sandbox`` in a child process, with its admin routes."""

    def __init__(self, child: ChildProcess, url: str, session: aiohttp.ClientSession) -> None:
        self.child = child
        self.url = url
        self._session = session

    @classmethod
    async def start(
        cls,
        workspace: Workspace,
        name: str,
        *,
        rate_limit: float | None,
        request_log_limit: int,
        api_keys: Sequence[str] = (),
    ) -> Sandbox:
        """``api_keys``: the keys it accepts, each limited on its own (default: the sandbox's)."""
        settings: dict[str, Any] = {
            "plan": "unlimited",
            "rate_limit_per_second": rate_limit,
            "rate_limit_window": "sliding",
            "request_log_limit": request_log_limit,
        }
        if api_keys:
            settings["api_keys"] = list(api_keys)
        config = workspace.path(f"{name}.json")
        config.write_text(json.dumps(settings))
        port = free_port()
        argv = [sys.executable, "-m", "service.cli", "sandbox", "--port", str(port)]
        argv += ["--config", str(config)]
        child = ChildProcess(name, argv, {}, workspace.path(f"{name}.log"))
        await child.start()
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_ok(child, f"{url}/_sandbox/faults")
        except BaseException:
            await child.stop()
            raise
        timeout = aiohttp.ClientTimeout(total=60)
        return cls(child, url, aiohttp.ClientSession(timeout=timeout))

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        async with self._session.request(method, f"{self.url}{path}", json=body) as response:
            if response.status >= 300:
                raise ChildFailed(f"sandbox {method} {path}: HTTP {response.status}")
            return (await response.json())["data"]

    async def reset(self) -> None:
        """Back to the seed: messages, request log, faults and limiter state."""
        await self.admin("POST", "/_sandbox/reset")

    async def requests(self, path: str = "/api/v1/") -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = await self.admin("GET", f"/_sandbox/requests?path={path}")
        return records

    async def stop(self) -> None:
        await self._session.close()
        await self.child.stop()


def relay_env(
    workspace: Workspace,
    topology: Topology,
    upstream: Upstream,
    *,
    http_port: int,
    state_url: str,
    rate_limit: float,
) -> dict[str, str]:
    """The relay's environment: everything on, as in production, at info level."""
    return {
        "AMQP_URL": workspace.endpoints.amqp_url,
        "MSGFLASH_BASE_URL": upstream.url,
        "MSGFLASH_API_KEY": DEFAULT_SANDBOX_API_KEY,
        "MSGFLASH_RATE_LIMIT": f"{rate_limit:g}",
        "RELAY_EXCHANGE_PREFIX": topology.prefix,
        "RELAY_HTTP_HOST": "127.0.0.1",
        "RELAY_HTTP_PORT": str(http_port),
        "RELAY_ADMIN_HOST": "127.0.0.1",
        "RELAY_ADMIN_PORT": str(free_port()),
        "RELAY_STATE_URL": state_url,
        "RELAY_LOG_LEVEL": "info",
        "RELAY_LOG_FORMAT": "json",
        "RELAY_PREFETCH": "64",
        "RELAY_RETRY_DELAYS": ",".join(f"{d:g}" for d in topology.retry_delays),
    }


class RelayProcess:
    """``python -m service.cli run`` (optionally under pyinstrument) and its admin port."""

    def __init__(self, child: ChildProcess, admin_port: int) -> None:
        self.child = child
        self.admin_port = admin_port

    @classmethod
    def create(
        cls, name: str, env: Mapping[str, str], log: Path, *, profile_to: Path | None = None
    ) -> RelayProcess:
        argv = [sys.executable, "-m"]
        if profile_to is not None:
            argv += ["pyinstrument", "-r", "pyisession", "-o", str(profile_to), "-m"]
        argv += ["service.cli", "run"]
        return cls(ChildProcess(name, argv, env, log), int(env["RELAY_ADMIN_PORT"]))

    async def start(self) -> None:
        await self.child.start()

    async def wait_ready(self) -> None:
        await wait_until_ok(self.child, f"http://127.0.0.1:{self.admin_port}/readyz")

    async def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
            session.get(url) as response,
        ):
            return await response.text()

    async def stop(self) -> None:
        await self.child.stop()


def baseline_process(name: str, env: Mapping[str, str], log: Path) -> ChildProcess:
    """The bare loop of ``benchmarks.baseline``, given the relay's own environment."""
    return ChildProcess(name, [sys.executable, "-m", "benchmarks.baseline"], env, log)


def faststream_process(name: str, env: Mapping[str, str], log: Path) -> ChildProcess:
    """The FastStream peer of ``benchmarks.peers.faststream_app``, given the relay's environment."""
    argv = [sys.executable, "-m", "benchmarks.peers.faststream_app"]
    return ChildProcess(name, argv, env, log)


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{wanted}"' in label_text for key, wanted in labels.items()):
            total += float(value)
    return total
