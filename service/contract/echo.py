"""Bounded echoes: what a producer sent is repeated back (in failure events, in log lines) only up
to a size, so an oversized ``id`` or ``source`` cannot turn one bad command into megabytes of
events and logs."""

from __future__ import annotations

# The contract's own bounds: an id travels as an AMQP message_id (255 bytes), a source is at
# most 1024 characters. A value within them is echoed whole, so a valid command is untouched.
ID_ECHO_BYTES = 255
SOURCE_ECHO_BYTES = 1024
TYPE_ECHO_BYTES = 255
# What is kept of an oversized value: enough for its producer to recognise it.
PREFIX_CHARS = 64
MARK = "…[truncated, {size} bytes]"


def bounded(value: str | None, limit: int) -> str | None:
    """``value`` if it fits in ``limit`` UTF-8 bytes, else its first characters and a mark that
    says it was cut and how long it was (the mark makes a cut value unmistakable for a real one).
    """
    if value is None:
        return None
    size = len(value.encode("utf-8", errors="replace"))
    if size <= limit:
        return value
    return value[:PREFIX_CHARS] + MARK.format(size=size)
