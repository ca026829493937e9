"""Warmup safety: the advisory ``safety`` blocks MsgFlash attaches to sends and campaigns (pure).

V1 safety never blocks (§14): it only says ``allow`` or ``warn``. MsgFlash does not document
its thresholds, so each safety state has a profile here; the ``warming`` one carries the
documented example values (score 56, 25/h, 100/day, 100 recipients, cold ratio 0.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GUARDED_STATES = frozenset({"new", "warming", "at_risk", "restricted"})


@dataclass(frozen=True, slots=True)
class SafetyProfile:
    score: int
    risk_level: str
    age_days: float
    hourly_outbound_cap: int
    daily_outbound_cap: int
    hourly_unique_recipients_cap: int
    daily_unique_recipients_cap: int
    max_campaign_recipients: int
    max_cold_ratio: float
    warning: str | None  # attached to every message sent while in this state

    def applied_limits(self) -> dict[str, Any]:
        return {
            "hourlyOutboundCap": self.hourly_outbound_cap,
            "dailyOutboundCap": self.daily_outbound_cap,
            "maxCampaignRecipients": self.max_campaign_recipients,
            "maxColdRatio": self.max_cold_ratio,
        }


# fmt: off
# score, riskLevel, age days, outbound caps 1h/24h, unique-recipient caps 1h/24h,
# max campaign recipients, max cold ratio, warning on each message
SAFETY_PROFILES: dict[str, SafetyProfile] = {
    "new": SafetyProfile(
        40, "high", 2.0, 10, 30, 10, 30, 30, 0.2,
        "Instance is new and in warmup: keep outbound volume under 10 messages/hour and 30/day",
    ),
    "warming": SafetyProfile(
        56, "medium", 10.0, 25, 100, 20, 80, 100, 0.4,
        "Instance is still warming up: keep outbound volume under 25 messages/hour and 100/day",
    ),
    "stable": SafetyProfile(72, "low", 90.0, 250, 2000, 200, 1500, 1000, 0.7, None),
    "at_risk": SafetyProfile(
        35, "high", 60.0, 10, 50, 10, 40, 50, 0.2,
        "Instance is at risk of restriction: reduce outbound volume and message warm contacts",
    ),
    "restricted": SafetyProfile(
        15, "high", 60.0, 5, 20, 5, 20, 20, 0.1,
        "Instance is restricted by WhatsApp: outbound messages may not be delivered",
    ),
}
# fmt: on


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a campaign reaches, by contact temperature (§14 ``audience``)."""

    warm: int = 0
    cold: int = 0
    unknown: int = 0
    blocked: int = 0

    @property
    def total(self) -> int:
        return self.warm + self.cold + self.unknown + self.blocked

    def ratio(self, count: int) -> float:
        return round(count / self.total, 4) if self.total else 0.0

    def as_api(self) -> dict[str, Any]:
        return {
            "totalRecipients": self.total,
            "warmCount": self.warm,
            "coldCount": self.cold,
            "unknownCount": self.unknown,
            "blockedCount": self.blocked,
            "coldRatio": self.ratio(self.cold),
            "warmRatio": self.ratio(self.warm),
            "unknownRatio": self.ratio(self.unknown),
        }


def message_safety(state: str, score: int) -> tuple[list[str], dict[str, Any]]:
    """The ``warnings`` and ``safety`` of a send: ``warn`` on every guarded state."""
    profile = SAFETY_PROFILES[state]
    block: dict[str, Any] = {
        "decision": "allow",
        "riskLevel": profile.risk_level,
        "state": state,
        "score": score,
        "reasons": [],
        "recommendations": [],
    }
    if profile.warning is None:
        return [], block
    block["decision"] = "warn"
    block["reasons"] = [profile.warning]
    block["recommendations"] = [
        f"Stay under {profile.hourly_outbound_cap} messages per hour and "
        f"{profile.daily_outbound_cap} per day on this instance",
        "Message contacts who already know this number first",
    ]
    return [profile.warning], block


def campaign_safety(state: str, score: int, audience: Audience) -> dict[str, Any]:
    """``warn`` when a guarded instance's campaign is too large or too cold; never blocks."""
    profile = SAFETY_PROFILES[state]
    reasons: list[str] = []
    recommendations: list[str] = []
    if state in GUARDED_STATES:
        if audience.total > profile.max_campaign_recipients:
            reasons.append(
                f"Audience of {audience.total} recipients exceeds the limit of "
                f"{profile.max_campaign_recipients} per campaign for a {state} instance"
            )
            recommendations.append(
                f"Split the campaign into batches of at most {profile.max_campaign_recipients}"
            )
        cold_ratio = audience.ratio(audience.cold)
        if cold_ratio > profile.max_cold_ratio:
            reasons.append(
                f"Cold contacts are {cold_ratio:.0%} of the audience, above the "
                f"{profile.max_cold_ratio:.0%} allowed for a {state} instance"
            )
            recommendations.append("Target warm contacts first, or mix in more warm contacts")
        if profile.warning is not None and state in ("at_risk", "restricted"):
            reasons.append(profile.warning)
    return {
        "decision": "warn" if reasons else "allow",
        "riskLevel": profile.risk_level,
        "state": state,
        "score": score,
        "reasons": reasons,
        "recommendations": recommendations,
        "appliedLimits": profile.applied_limits(),
        "audience": audience.as_api(),
    }


def warmup_policy(state: str) -> dict[str, Any]:
    profile = SAFETY_PROFILES[state]
    return {
        "state": state,
        "instanceAgeDays": profile.age_days,
        "hourlyOutboundCap": profile.hourly_outbound_cap,
        "dailyOutboundCap": profile.daily_outbound_cap,
        "hourlyUniqueRecipientsCap": profile.hourly_unique_recipients_cap,
        "dailyUniqueRecipientsCap": profile.daily_unique_recipients_cap,
        "maxCampaignRecipients": profile.max_campaign_recipients,
        "maxColdRatio": profile.max_cold_ratio,
    }


def health_recommendations(state: str) -> list[str]:
    profile = SAFETY_PROFILES[state]
    if profile.warning is None:
        return ["Keep a steady volume and answer replies to keep the instance healthy"]
    return [
        profile.warning,
        f"Keep campaigns under {profile.max_campaign_recipients} recipients with at most "
        f"{profile.max_cold_ratio:.0%} cold contacts",
    ]
