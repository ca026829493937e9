"""`msgflash-relay send` builds the command its flags describe."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.contract.errors import ConfigError
from service.tools.command_flags import flag_for
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


def test_in_schedules_relative_to_now_so_examples_never_go_stale() -> None:
    now = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)
    cmd = build_command(parse("--to", "+33612345678", "--text", "Hi", "--in", "10m"), now=now)
    assert cmd["type"] == "msgflash.message.schedule"
    assert cmd["data"]["scheduledAt"] == "2030-01-01T08:10:00Z"
    campaign = build_command(
        parse("--campaign", "--name", "N", "--text", "x", "--in", "2d"), now=now
    )
    assert campaign["data"]["schedule"] == "2030-01-03T08:00:00Z"


@pytest.mark.parametrize(
    ("field", "argv", "flag"),
    [
        ("data.to", (), "--to"),
        ("data.scheduledAt", ("--at", "x"), "--at"),
        ("data.scheduledAt", ("--in", "5m"), "--in"),
        ("data.schedule", ("--campaign", "--in", "5m"), "--in"),
        ("data.message.text", (), "--text"),
        ("data.message.mediaUrl", (), "--image"),
        ("data.template.variables.firstName", (), "--var"),
        ("data.template.id", (), "--template"),
        ("data.recipients.value", (), "--recipients"),
        ("data.instanceId", (), "--instance-id"),
        ("data", (), None),
    ],
)
def test_a_wire_field_is_reported_as_the_flag_that_set_it(
    field: str, argv: tuple[str, ...], flag: str | None
) -> None:
    assert flag_for(field, parse(*argv)) == flag


def test_fields_of_a_file_keep_their_wire_names(tmp_path: Path) -> None:
    assert flag_for("data.to", parse("--file", str(tmp_path / "cmd.json"))) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--to", "+33612345678"), "say what to send"),
        (("--to", "+33612345678", "--text", "x", "--caption", "c"), "--caption goes with --image"),
        (("--campaign", "--now", "--name", "N", "--text", "x"), "--now does not apply"),
    ],
)
def test_flags_that_cannot_make_a_command_are_refused_naming_them(
    argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_command(parse(*argv))


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


def test_account_sets_the_cloudevents_account_attribute(tmp_path: Path) -> None:
    cmd = build_command(parse("--now", "--to", "+1", "--text", "Hi", "--account", "acme"))
    assert cmd["account"] == "acme"
    assert "account" not in build_command(parse("--now", "--to", "+1", "--text", "Hi"))
    path = tmp_path / "cmd.json"
    path.write_text(json.dumps({"specversion": "1.0", "id": "x", "source": "s", "type": "t"}))
    assert build_command(parse("--file", str(path), "--account", "acme"))["account"] == "acme"
