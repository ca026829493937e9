"""What the tools say when the broker cannot be used: where, why and what to do, no secret."""

from __future__ import annotations

from aio_pika.exceptions import AMQPConnectionError, ChannelNotFoundEntity
from aiormq.exceptions import ProbableAuthenticationError

from service.settings import load_settings
from service.tools.broker import not_declared, shown_url, unreachable

URL = "amqp://relay:s3cret@broker.example:5673/prod"


def test_the_url_is_shown_without_its_credentials() -> None:
    assert shown_url(URL) == "amqp://broker.example:5673/prod"


def test_a_refused_connection_says_to_start_rabbitmq() -> None:
    error = AMQPConnectionError(111, "Connect call failed ('127.0.0.1', 5673)")
    message = unreachable(URL, error)
    assert "connection refused" in message and "make services" in message
    assert "s3cret" not in message


def test_refused_credentials_say_to_check_them() -> None:
    message = unreachable(URL, ProbableAuthenticationError("ACCESS_REFUSED"))
    assert "refused the user and password: check them in AMQP_URL" in message
    assert "s3cret" not in message


def test_a_missing_exchange_names_the_prefix_and_the_fix() -> None:
    settings = load_settings({"RELAY_EXCHANGE_PREFIX": "acme"}, relay=False)
    error = ChannelNotFoundEntity("NOT_FOUND - no exchange 'acme.commands' in vhost '/'")
    assert not_declared(settings, error).startswith(
        "no exchange 'acme.commands' in vhost '/': nothing is declared under "
        "RELAY_EXCHANGE_PREFIX='acme'"
    )
