"""The ``data`` of ``tether.campaign.create`` (contract §8), in Tether's own field names.

Tether ids are 24-hex MongoDB ObjectIds; phones are E.164. ``quota`` is the relay's own field:
how the daily SMS quota is handled before Tether is asked to create anything.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from service.contract.wire import (
    E164Number,
    Instant,
    ObjectId,
    ShortText,
    Text,
    WireModel,
    problems_error,
)

Email = Annotated[
    str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
]

QuotaPolicy = Literal["check", "segment", "skip"]


class NewContact(WireModel):
    """A contact Tether creates with the campaign."""

    first_name: ShortText
    last_name: ShortText | None = None
    phone_number: E164Number
    email: Email | None = None


class ExistingContact(WireModel):
    """A contact Tether already has, by its ``_id``; the other fields are informative."""

    id: ObjectId = Field(alias="_id")
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    phone_number: E164Number | None = None
    email: Email | None = None


# ``_has_recipients`` as JSON Schema, so the documents refuse what the parser refuses.
RECIPIENTS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"required": ["newContacts"], "properties": {"newContacts": {"minItems": 1}}},
        {
            "required": ["selectedExistingContacts"],
            "properties": {"selectedExistingContacts": {"minItems": 1}},
        },
    ]
}


class TetherCampaignData(WireModel):
    model_config = ConfigDict(json_schema_extra=RECIPIENTS_SCHEMA)

    name: ShortText
    message: Text  # placeholders such as {{firstName}} are Tether's to render
    schedule_date: Instant | None = None  # absent: now; past: refused on arrival
    new_contacts: tuple[NewContact, ...] = ()
    selected_existing_contacts: tuple[ExistingContact, ...] = ()
    type: ShortText = "sms"
    is_autopilot: bool = False
    process: ShortText | None = None
    segmentation: dict[str, Any] | None = None
    assignment: dict[str, Any] | None = None
    quota: QuotaPolicy = "check"

    @model_validator(mode="after")
    def _has_recipients(self) -> TetherCampaignData:
        if not self.new_contacts and not self.selected_existing_contacts:
            problem = (
                ("newContacts",),
                "no recipient: add at least one entry to newContacts or selectedExistingContacts",
            )
            raise problems_error([problem], self.model_dump(by_alias=True, exclude_none=True))
        return self

    @property
    def recipient_count(self) -> int:
        return len(self.new_contacts) + len(self.selected_existing_contacts)
