"""A provider's HTTP route, as both providers' clients name, trace and count their calls."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A route; ``label`` is its metric and log name and never contains a raw id."""

    method: str
    template: str

    @property
    def label(self) -> str:
        return f"{self.method} {self.template}"

    def path(self, **ids: str) -> str:
        """The route with its ``{placeholders}`` filled in, each id percent-encoded."""
        return self.template.format(**{name: quote(v, safe="") for name, v in ids.items()})
