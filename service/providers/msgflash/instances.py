"""Which MsgFlash instance a command means: by id, by name or WhatsApp number, or the default.

MsgFlash only accepts instance ids; producers may name an instance instead, so names and
numbers are resolved against a short-lived cache of ``GET /api/v1/instances``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from service.contract.errors import INSTANCE_AMBIGUOUS, INSTANCE_NOT_FOUND, InstanceResolutionError
from service.contract.wire import UUID_PATTERN

if TYPE_CHECKING:
    from service.providers.msgflash.client import MsgFlashClient

_UUID = re.compile(UUID_PATTERN)
_NOT_DIGITS = re.compile(r"\D")


def choose_instance(instances: Sequence[Mapping[str, Any]], wanted: str) -> str:
    """The id of the one instance named ``wanted`` or owning that WhatsApp number.

    Numbers compare digits only, since MsgFlash shows ``waNumber`` with and without ``+``.
    Several matches: the connected one wins; several connected (or none) is ambiguous.
    """
    digits = _NOT_DIGITS.sub("", wanted)
    candidates = [
        instance
        for instance in instances
        if instance.get("name") == wanted
        or (digits and _NOT_DIGITS.sub("", str(instance.get("waNumber") or "")) == digits)
    ]
    if not candidates:
        known = ", ".join(sorted(repr(i.get("name")) for i in instances)) or "none"
        raise InstanceResolutionError(
            f"no MsgFlash instance has the name or WhatsApp number {wanted!r} "
            f"(instances: {known}); set `instance` to an existing name or waNumber, "
            f"or set `instanceId`",
            code=INSTANCE_NOT_FOUND,
        )
    if len(candidates) == 1:
        return str(candidates[0]["id"])
    connected = [i for i in candidates if i.get("status") == "connected"]
    if len(connected) == 1:
        return str(connected[0]["id"])
    shortlist = connected or candidates
    state = "are all connected" if connected else "none is connected"
    raise InstanceResolutionError(
        f"instance {wanted!r} matches {len(shortlist)} MsgFlash instances that {state}: "
        f"{', '.join(str(i['id']) for i in shortlist)}; use `instanceId` to pick one",
        code=INSTANCE_AMBIGUOUS,
    )


def is_instance_id(value: str) -> bool:
    """MsgFlash instance ids are UUIDs; anything else is a name or a number."""
    return _UUID.match(value) is not None


class InstanceResolver:
    """Turns a command's ``instanceId`` / ``instance`` / nothing into a MsgFlash instance id.

    The instance list is cached for ``ttl_seconds``; concurrent callers share one fetch (the
    lock), and a name that is not in the cache triggers one refresh, so an instance created a
    moment ago is found without waiting for the TTL.
    """

    def __init__(
        self,
        client: MsgFlashClient,
        *,
        ttl_seconds: float,
        default_instance: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._default = default_instance
        self._clock = clock
        self._lock = asyncio.Lock()
        self._instances: list[dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._generation = 0  # bumped on every fetch

    async def resolve(self, *, instance_id: str | None, instance: str | None) -> str:
        if instance_id is not None:
            return instance_id
        if instance is not None:
            return await self._by_name(instance)
        if self._default is None:
            raise InstanceResolutionError(
                "the command names no instance: the producer should set `instanceId` or "
                "`instance` in the command's data, or the operator RELAY_DEFAULT_INSTANCE",
                code=INSTANCE_NOT_FOUND,
            )
        if is_instance_id(self._default):
            return self._default
        return await self._by_name(self._default)

    async def _by_name(self, wanted: str) -> str:
        generation = self._generation
        instances = await self._load(refresh_generation=None)
        try:
            return choose_instance(instances, wanted)
        except InstanceResolutionError as error:
            # Refresh once, unless the list was already fetched during this very call.
            if error.code != INSTANCE_NOT_FOUND or self._generation != generation:
                raise
        return choose_instance(await self._load(refresh_generation=generation), wanted)

    async def _load(self, *, refresh_generation: int | None) -> list[dict[str, Any]]:
        """The cached list, fetched when missing, expired, or still at ``refresh_generation``."""
        seen = self._generation
        async with self._lock:
            fetched_meanwhile = self._generation != seen
            if self._instances is None or (
                not fetched_meanwhile and self._stale(refresh_generation)
            ):
                self._instances = await self._client.list_instances()
                self._fetched_at = self._clock()
                self._generation += 1
            return self._instances

    def _stale(self, refresh_generation: int | None) -> bool:
        if refresh_generation is not None:
            return self._generation == refresh_generation
        return self._clock() - self._fetched_at >= self._ttl
