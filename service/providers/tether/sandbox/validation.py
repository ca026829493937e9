"""The create-campaign body rules (fact sheet C1, rule R6). Pure: body in, problems out.

Two rules are the sandbox's answers to gaps, passed in from its config: the phone rule (G7)
and whether a ``scheduleDate`` is required (G4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from service.providers.tether.api import read_instant
from service.providers.tether.sandbox.config import PhoneRule

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")
# What ``loose`` lets people type between the digits.
_SEPARATORS = re.compile(r"[\s().-]")
_PHONE_RULES: Mapping[PhoneRule, str] = {
    "e164": "an E.164 phone number",
    "loose": "a phone number with its country code",
}
_TYPES: Mapping[str, tuple[type, ...]] = {
    "name": (str,),
    "message": (str,),
    "newContacts": (list,),
    "selectedExistingContacts": (list,),
    "userIds": (list,),
    "scheduleDate": (str,),
    "process": (str,),
    "status": (str,),
    "isAutopilot": (bool,),
    "type": (str,),
    "segmentation": (dict,),
    "assignment": (dict,),
    "rawCsvData": (dict,),
}


# The same rule as the relay's reading of Tether's dates: ISO 8601 with an offset, else None.
parse_instant = read_instant


def e164_phone(value: object, rule: PhoneRule) -> str | None:
    """``value`` as the E.164 number the sandbox stores, or None if ``rule`` refuses it."""
    if not isinstance(value, str):
        return None
    if rule == "loose":
        value = "+" + _SEPARATORS.sub("", value).removeprefix("+")
    return value if PHONE.match(value) else None


def campaign_problems(
    body: Any, *, phone_rule: PhoneRule = "e164", require_schedule: bool = False
) -> list[str]:
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    problems = [
        f"{name} must be of type {kinds[0].__name__}"
        for name, kinds in _TYPES.items()
        if name in body and not isinstance(body[name], kinds)
    ]
    if problems:
        return problems
    for required in ("name", "message"):
        if not str(body.get(required) or "").strip():
            problems.append(f"Missing required field: {required}")
    problems += _contact_problems(body, phone_rule)
    if require_schedule and "scheduleDate" not in body:
        problems.append("Missing required field: scheduleDate")
    if "scheduleDate" in body and parse_instant(body["scheduleDate"]) is None:
        problems.append("scheduleDate must be an ISO 8601 date-time with a UTC offset")
    return problems


def _contact_problems(body: Mapping[str, Any], phone_rule: PhoneRule) -> list[str]:
    problems: list[str] = []
    new = body.get("newContacts") or []
    existing = body.get("selectedExistingContacts") or []
    user_ids = body.get("userIds") or []
    for i, contact in enumerate(new):
        phone = contact.get("phoneNumber") if isinstance(contact, dict) else None
        if e164_phone(phone, phone_rule) is None:
            problems.append(f"newContacts[{i}].phoneNumber must be {_PHONE_RULES[phone_rule]}")
    for i, contact in enumerate(existing):
        oid = contact.get("_id") if isinstance(contact, dict) else None
        if not isinstance(oid, str) or not OBJECT_ID.match(oid):
            problems.append(f"selectedExistingContacts[{i}]._id must be a 24-hex ObjectId")
    for i, oid in enumerate(user_ids):
        if not isinstance(oid, str) or not OBJECT_ID.match(oid):
            problems.append(f"userIds[{i}] must be a 24-hex ObjectId")
    if not (new or existing or user_ids):
        problems.append("A campaign needs at least one contact")
    return problems
