"""One account a sandbox simulates, in memory: its records, plan and monthly usage.

One user per account, and nothing shared between accounts: a record is found only in the
state of the account whose key created it. ``build_state`` turns a seed into a fresh state;
a reset simply builds a new one, so nothing from before a reset can leak into after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.providers.msgflash.sandbox.records import (
    CampaignRecord,
    ContactRecord,
    GroupRecord,
    InstanceRecord,
    MessageRecord,
    TemplateRecord,
    WebhookRecord,
)
from service.providers.msgflash.sandbox.safety import SAFETY_PROFILES
from service.providers.msgflash.sandbox.seed import SeedData, SeedInstance, SeedUser
from service.providers.msgflash.sandbox.templating import TemplateSyntaxError, template_variables


@dataclass
class Usage:
    """This month's counters, as ``GET /api/v1/billing/usage`` reports them."""

    messages_count: int = 0
    statuses_count: int = 0
    api_requests_count: int = 0

    @property
    def effective_outbound(self) -> int:
        return self.messages_count + self.statuses_count  # statuses share the message quota


@dataclass
class Account:
    plan_code: str
    usage: Usage = field(default_factory=Usage)
    limit_overrides: dict[str, int | None] = field(default_factory=dict)
    feature_overrides: dict[str, bool] = field(default_factory=dict)


@dataclass
class SandboxState:
    name: str  # the account's name in the sandbox config
    user: SeedUser
    account: Account
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    templates: dict[str, TemplateRecord] = field(default_factory=dict)
    contacts: dict[str, ContactRecord] = field(default_factory=dict)
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    members: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> contact -> added
    messages: dict[str, MessageRecord] = field(default_factory=dict)  # in creation order
    campaigns: dict[str, CampaignRecord] = field(default_factory=dict)
    webhooks: dict[str, WebhookRecord] = field(default_factory=dict)

    def remove_contact(self, contact_id: str) -> None:
        del self.contacts[contact_id]
        for members in self.members.values():
            members.pop(contact_id, None)


def instance_record(seed: SeedInstance, user_id: str, now: float) -> InstanceRecord:
    score = seed.safety_score
    if score is None:
        score = SAFETY_PROFILES[seed.safety_state].score
    return InstanceRecord(
        id=seed.id,
        user_id=user_id,
        name=seed.name,
        wa_number=seed.wa_number,
        status=seed.status,
        business=seed.business,
        safety_state=seed.safety_state,
        safety_score=score,
        created_at=now,
        updated_at=now,
    )


def _variables_or_none(body: str | None) -> tuple[str, ...]:
    """A seed template may be broken on purpose (to exercise TEMPLATE_INVALID at send)."""
    try:
        return template_variables(body)
    except TemplateSyntaxError:
        return ()


def build_state(name: str, seed: SeedData, plan_code: str, now: float) -> SandboxState:
    user_id = seed.user.id
    state = SandboxState(name=name, user=seed.user, account=Account(plan_code=plan_code))
    for instance in seed.instances:
        state.instances[instance.id] = instance_record(instance, user_id, now)
    for template in seed.templates:
        state.templates[template.id] = TemplateRecord(
            id=template.id,
            user_id=user_id,
            name=template.name,
            type=template.type,
            body=template.body,
            media_url=template.media_url,
            variables=_variables_or_none(template.body),
            created_at=now,
            updated_at=now,
        )
    for contact in seed.contacts:
        state.contacts[contact.id] = ContactRecord(
            id=contact.id,
            user_id=user_id,
            name=contact.name,
            phone=contact.phone,
            tags=contact.tags,
            meta=contact.meta,
            temperature=contact.temperature,
            created_at=now,
            updated_at=now,
        )
    for group in seed.groups:
        state.groups[group.id] = GroupRecord(
            group.id, group.name, group.description, group.color, now, now
        )
        state.members[group.id] = dict.fromkeys(group.members, now)
    for hook in seed.webhooks:
        state.webhooks[hook.id] = WebhookRecord(
            hook.id, hook.url, hook.events, hook.secret, now, now
        )
    return state
