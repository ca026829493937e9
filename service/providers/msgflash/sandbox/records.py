"""The records the sandbox stores, and their MsgFlash wire shapes (``as_api``).

Records are frozen; a change replaces the record (``dataclasses.replace``), so a response
built from one can never be altered by a later transition. Times are epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.providers.msgflash.sandbox.formats import iso_timestamp


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    id: str
    user_id: str
    name: str
    wa_number: str | None
    status: str
    business: bool
    safety_state: str
    safety_score: int
    created_at: float
    updated_at: float

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": self.user_id,
            "name": self.name,
            "waNumber": self.wa_number,
            "status": self.status,
            "webhook": None,
            # How MsgFlash exposes the Business flag is undocumented; the sandbox uses meta.
            "meta": {"whatsappBusiness": self.business},
            "deletedAt": None,
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    id: str
    user_id: str
    name: str
    type: str
    body: str | None
    media_url: str | None
    variables: tuple[str, ...]
    created_at: float
    updated_at: float

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": self.user_id,
            "name": self.name,
            "type": self.type,
            "body": self.body,
            "mediaUrl": self.media_url,
            "variables": list(self.variables),
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ContactRecord:
    id: str
    user_id: str
    name: str
    phone: str
    tags: tuple[str, ...]
    meta: dict[str, Any] | None
    temperature: str
    created_at: float
    updated_at: float

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": self.user_id,
            "name": self.name,
            "phone": self.phone,
            "tags": list(self.tags),
            "meta": self.meta,
            "temperature": self.temperature,
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    name: str
    description: str | None
    color: str | None
    created_at: float
    updated_at: float

    def as_api(self, contact_count: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "color": self.color,
            "contactCount": contact_count,
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class MessageRecord:
    id: str
    user_id: str
    instance_id: str
    contact_id: str | None
    type: str
    to: str
    body: str | None
    media_url: str | None
    status: str
    due_at: float  # when the worker picks it up: now for a send, scheduledAt for a schedule
    created_at: float
    updated_at: float
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    provider_message_id: str | None = None
    warnings: tuple[str, ...] = ()
    safety: dict[str, Any] = field(default_factory=dict)

    def as_api(self, *, with_safety: bool = False) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "id": self.id,
            "userId": self.user_id,
            "instanceId": self.instance_id,
            "contactId": self.contact_id,
            "campaignId": None,
            "direction": "outbound",
            "type": self.type,
            "from": None,
            "to": self.to,
            "body": self.body,
            "mediaUrl": self.media_url,
            "status": self.status,
            "error": self.error,
            "meta": self.meta,
            "providerMessageId": self.provider_message_id,
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }
        if with_safety:  # send and schedule responses only (§6.3, §6.4)
            shown["warnings"] = list(self.warnings)
            shown["safety"] = self.safety
        return shown


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: str
    user_id: str
    instance_id: str
    name: str
    status: str
    template_id: str | None
    type: str | None
    body: str | None
    media_url: str | None
    schedule: float
    repeat: str
    recipients: dict[str, Any]
    template_variables: dict[str, Any] | None
    audience_total: int
    safety: dict[str, Any]
    created_at: float
    updated_at: float

    def stats(self) -> dict[str, Any]:
        # The sandbox never runs campaigns, so every counter stays at its creation value.
        counters = ("planned", "queued", "sent", "delivered", "read", "failed", "cancelled")
        times = ("processingStartedAt", "lastEnqueuedAt", "completedAt", "cancelledAt")
        return {**dict.fromkeys(counters, 0), **dict.fromkeys(times)}

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "userId": self.user_id,
            "instanceId": self.instance_id,
            "name": self.name,
            "status": self.status,
            "templateId": self.template_id,
            "type": self.type,
            "body": self.body,
            "mediaUrl": self.media_url,
            "schedule": iso_timestamp(self.schedule),
            "repeat": self.repeat,
            "recipients": self.recipients,
            "templateVariables": self.template_variables,
            "stats": self.stats(),
            "safety": self.safety,
            "createdAt": iso_timestamp(self.created_at),
            "updatedAt": iso_timestamp(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: float
    updated_at: float
    active: bool = True

    def as_api(self, *, with_secret: bool = False) -> dict[str, Any]:
        shown: dict[str, Any] = {"id": self.id, "url": self.url, "events": list(self.events)}
        if with_secret:  # only in the creation response: MsgFlash shows a secret once
            shown["secret"] = self.secret
        shown["active"] = self.active
        shown["createdAt"] = iso_timestamp(self.created_at)
        shown["updatedAt"] = iso_timestamp(self.updated_at)
        return shown
