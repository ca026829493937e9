"""`msgflash-relay send` builds the command its flags describe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from service.contract.errors import ConfigError
from service.tools.send import add_arguments, build_command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_text_with_a_time_is_a_schedule_command() -> None:
    cmd = build_command(
        parse("--to", "+33612345678", "--text", "Hi", "--at", "2030-01-01T08:00:00Z")
    )
    assert cmd["type"] == "msgflash.message.schedule"
    assert cmd["data"] == {
        "to": "+33612345678",
        "message": {"type": "text", "text": "Hi"},
        "scheduledAt": "2030-01-01T08:00:00Z",
    }
    assert cmd["specversion"] == "1.0" and cmd["id"] and cmd["source"]


def test_template_with_vars_and_instance_name_sends_now() -> None:
    cmd = build_command(
        parse("--now", "--instance", "main", "--to", "+33612345678", "--template", "T",
              "--var", "firstName=Ana", "--var", "offer=10%")
    )  # fmt: skip
    assert cmd["type"] == "msgflash.message.send"
    assert cmd["data"]["instance"] == "main"
    assert cmd["data"]["template"] == {"id": "T", "variables": {"firstName": "Ana", "offer": "10%"}}


def test_image_with_caption() -> None:
    cmd = build_command(parse("--to", "+1", "--image", "https://e.com/a.png", "--caption", "A"))
    assert cmd["data"]["message"] == {
        "type": "image",
        "mediaUrl": "https://e.com/a.png",
        "caption": "A",
    }


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", {"type": "all"}),
        ("tags:vip,fr", {"type": "tags", "value": ["vip", "fr"]}),
        ("explicit:a,b", {"type": "explicit", "value": ["a", "b"]}),
        ("group:G", {"type": "group", "groupId": "G"}),
    ],
)
def test_campaign_recipients(spec: str, expected: dict[str, object]) -> None:
    cmd = build_command(
        parse("--campaign", "--name", "N", "--at", "2030-01-01T08:00:00Z", "--recipients", spec,
              "--text", "x", "--repeat", "weekly")
    )  # fmt: skip
    assert cmd["type"] == "msgflash.campaign.create"
    assert cmd["data"]["recipients"] == expected
    assert cmd["data"]["repeat"] == "weekly"


def test_a_bad_var_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--var"):
        build_command(parse("--to", "+1", "--template", "T", "--var", "novalue"))


def test_a_file_holding_data_only_is_wrapped_in_an_envelope(tmp_path: Path) -> None:
    data = {"to": "+33612345678", "message": {"type": "text", "text": "f"}}
    path = tmp_path / "cmd.json"
    path.write_text(json.dumps(data))
    cmd = build_command(parse("--file", str(path), "--id", "fixed"))
    assert cmd["id"] == "fixed" and cmd["data"] == data
    assert cmd["type"] == "msgflash.message.send"


def test_a_file_holding_a_whole_cloudevent_is_used_as_is(tmp_path: Path) -> None:
    event = {
        "specversion": "1.0",
        "id": "x",
        "source": "s",
        "type": "msgflash.message.send",
        "data": {},
    }
    path = tmp_path / "cmd.json"
    path.write_text(json.dumps(event))
    assert build_command(parse("--file", str(path))) == event


def test_provider_tether_builds_a_tether_campaign_in_tethers_own_names() -> None:
    cmd = build_command(
        parse("--provider", "tether", "--name", "Launch", "--text", "Hi {{firstName}}",
              "--to", "+14155550133", "--first-name", "Jamie",
              "--contact-id", "665f1a0c0e0a4b001a2c9f01", "--at", "2030-05-20T15:00:00Z",
              "--quota", "segment")
    )  # fmt: skip
    assert cmd["type"] == "tether.campaign.create"
    assert cmd["data"] == {
        "name": "Launch",
        "message": "Hi {{firstName}}",
        "newContacts": [{"firstName": "Jamie", "phoneNumber": "+14155550133"}],
        "selectedExistingContacts": [{"_id": "665f1a0c0e0a4b001a2c9f01"}],
        "scheduleDate": "2030-05-20T15:00:00Z",
        "quota": "segment",
    }
