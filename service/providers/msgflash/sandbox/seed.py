"""The data a sandbox starts from (and returns to on reset), with fixed, importable ids.

Other test suites address these records by the constants below, so the ids never change.
Seed models accept the API's camelCase names (``waNumber``) as well as snake_case.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.providers.msgflash.sandbox.formats import is_e164

_PREFIX = "00000000-0000-4000-8000-0000000000"

SANDBOX_USER_ID = _PREFIX + "e1"
INSTANCE_MAIN = _PREFIX + "a1"
INSTANCE_WARMING = _PREFIX + "a2"
INSTANCE_NEW = _PREFIX + "a3"
INSTANCE_CONNECTING = _PREFIX + "a4"
INSTANCE_OFFLINE = _PREFIX + "a5"
TEMPLATE_WELCOME = _PREFIX + "b1"
TEMPLATE_PROMO = _PREFIX + "b2"
CONTACT_ANA = _PREFIX + "c1"
CONTACT_BRUNO = _PREFIX + "c2"
CONTACT_CHEN = _PREFIX + "c3"
GROUP_CUSTOMERS = _PREFIX + "d1"

InstanceStatus = Literal["connected", "connecting", "disconnected", "suspended"]
SafetyState = Literal["new", "warming", "stable", "at_risk", "restricted"]
TemplateType = Literal["text", "image", "video", "audio", "document"]
Temperature = Literal["warm", "cold", "unknown"]
WEBHOOK_EVENTS = (
    "instance.connected",
    "instance.disconnected",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.received",
)
WebhookEvent = Literal[
    "instance.connected",
    "instance.disconnected",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.received",
]


class _SeedModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class SeedUser(_SeedModel):
    id: str = SANDBOX_USER_ID
    full_name: str = Field("Sandbox User", alias="fullName")
    email: str = "sandbox@example.com"
    phone: str | None = "+2250700000000"


class SeedInstance(_SeedModel):
    id: str
    name: str = Field(min_length=1)
    wa_number: str | None = Field(None, alias="waNumber")
    status: InstanceStatus = "connected"
    business: bool = False
    safety_state: SafetyState = Field("stable", alias="safetyState")
    # None: the default of the safety state (see ``safety.SAFETY_PROFILES``).
    safety_score: int | None = Field(None, ge=0, le=100, alias="safetyScore")


class SeedTemplate(_SeedModel):
    """Not checked for placeholder syntax, so a seed can hold a broken template on purpose."""

    id: str
    name: str = Field(min_length=1)
    type: TemplateType = "text"
    body: str | None = None
    media_url: str | None = Field(None, alias="mediaUrl")


class SeedContact(_SeedModel):
    id: str
    name: str = Field(min_length=1)
    phone: str
    tags: tuple[str, ...] = ()
    meta: dict[str, object] | None = None
    temperature: Temperature = "unknown"

    @model_validator(mode="after")
    def _phone_is_e164(self) -> SeedContact:
        if not is_e164(self.phone):
            raise ValueError(f"contact {self.id}: phone must be E.164, e.g. +33612345678")
        return self


class SeedGroup(_SeedModel):
    id: str
    name: str = Field(min_length=1)
    description: str | None = None
    color: str | None = None
    members: tuple[str, ...] = ()


class SeedWebhook(_SeedModel):
    """A pre-registered endpoint, so an embedded relay receives webhooks with a known secret."""

    id: str
    url: str
    events: tuple[WebhookEvent, ...] = Field(min_length=1)
    secret: str = Field(min_length=1, repr=False)


class SeedData(_SeedModel):
    user: SeedUser = SeedUser()
    instances: tuple[SeedInstance, ...] = ()
    templates: tuple[SeedTemplate, ...] = ()
    contacts: tuple[SeedContact, ...] = ()
    groups: tuple[SeedGroup, ...] = ()
    webhooks: tuple[SeedWebhook, ...] = ()

    @model_validator(mode="after")
    def _references_hold(self) -> SeedData:
        ids = [
            *(record.id for record in self.instances),
            *(record.id for record in self.templates),
            *(record.id for record in self.contacts),
            *(record.id for record in self.groups),
            *(record.id for record in self.webhooks),
        ]
        duplicates = sorted({record_id for record_id in ids if ids.count(record_id) > 1})
        if duplicates:
            raise ValueError(f"seed ids must be unique; repeated: {', '.join(duplicates)}")
        contact_ids = {contact.id for contact in self.contacts}
        for group in self.groups:
            unknown = [member for member in group.members if member not in contact_ids]
            if unknown:
                raise ValueError(
                    f"group {group.id}: members not among the seed contacts: {unknown}"
                )
        return self


def default_seed() -> SeedData:
    """Five instances covering every state the relay must handle, two templates, three
    contacts (one warm, two cold) and one group."""
    return SeedData(
        instances=(
            SeedInstance(
                id=INSTANCE_MAIN,
                name="main",
                wa_number="+2250700000001",
                business=True,
                safety_state="stable",
                safety_score=72,
            ),
            SeedInstance(
                id=INSTANCE_WARMING,
                name="warming",
                wa_number="+2250700000002",
                safety_state="warming",
                safety_score=56,
            ),
            SeedInstance(
                id=INSTANCE_NEW, name="fresh", wa_number="+2250700000003", safety_state="new"
            ),
            SeedInstance(
                id=INSTANCE_CONNECTING,
                name="backup",
                wa_number="+2250700000004",
                status="connecting",
            ),
            SeedInstance(
                id=INSTANCE_OFFLINE,
                name="offline",
                wa_number="+2250700000005",
                status="disconnected",
            ),
        ),
        templates=(
            SeedTemplate(
                id=TEMPLATE_WELCOME,
                name="welcome",
                type="text",
                body="Hello {{custom.firstName}}, welcome to {{instance.name}}!",
            ),
            SeedTemplate(
                id=TEMPLATE_PROMO,
                name="promo",
                type="image",
                media_url="https://example.com/promo.png",
                body="Hi {{contact.firstName}}, {{custom.offer}}",
            ),
        ),
        contacts=(
            SeedContact(
                id=CONTACT_ANA,
                name="Ana Lima",
                phone="+33612345678",
                tags=("vip", "fr"),
                temperature="warm",
            ),
            SeedContact(
                id=CONTACT_BRUNO,
                name="Bruno Costa",
                phone="+5511999990000",
                tags=("br",),
                temperature="cold",
            ),
            SeedContact(
                id=CONTACT_CHEN, name="Chen Wei", phone="+8613800000000", temperature="cold"
            ),
        ),
        groups=(
            SeedGroup(id=GROUP_CUSTOMERS, name="customers", members=(CONTACT_ANA, CONTACT_BRUNO)),
        ),
    )
