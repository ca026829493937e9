"""Webhook signatures and ingress tokens (``service.web.credentials``): pure, no server.

Signatures are made with the sandbox's signer, an independent implementation of MsgFlash's
rule (fact sheet §11), so both sides would have to be wrong the same way to agree.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from service.providers.msgflash.sandbox.delivery import sign
from service.settings import IngressGrant
from service.web.credentials import BearerTokens, WebhookVerifier, bearer_token, webhook_signature

secrets = st.text(min_size=1, max_size=64)
bodies = st.binary(max_size=2048)


@given(secret=secrets, body=bodies)
def test_a_body_signed_with_the_secret_is_verified(secret: str, body: bytes) -> None:
    assert WebhookVerifier((secret,)).verify(body, sign(secret, body))


@given(secret=secrets, body=bodies)
def test_the_relay_signs_exactly_as_msgflash_does(secret: str, body: bytes) -> None:
    assert webhook_signature(secret, body) == sign(secret, body)


@given(secret=secrets, other=secrets, body=bodies)
def test_a_signature_made_with_another_secret_is_refused(
    secret: str, other: str, body: bytes
) -> None:
    assume(secret != other)
    assert not WebhookVerifier((secret,)).verify(body, sign(other, body))


@given(secret=secrets, body=bodies, tampered=bodies)
def test_a_signature_of_another_body_is_refused(secret: str, body: bytes, tampered: bytes) -> None:
    assume(body != tampered)
    assert not WebhookVerifier((secret,)).verify(tampered, sign(secret, body))


def test_during_a_rotation_every_configured_secret_is_accepted() -> None:
    verifier = WebhookVerifier(("old", "new", "next"))
    for secret in ("old", "new", "next"):
        assert verifier.verify(b"{}", sign(secret, b"{}"))
    assert not verifier.verify(b"{}", sign("retired", b"{}"))


def test_the_portal_hints_bare_hex_is_refused_because_deliveries_carry_the_prefix() -> None:
    bare = sign("s", b"{}").removeprefix("sha256=")
    assert not WebhookVerifier(("s",)).verify(b"{}", bare)


def test_only_the_exact_lowercase_form_is_accepted() -> None:
    signature = sign("s", b"{}")
    verifier = WebhookVerifier(("s",))
    assert not verifier.verify(b"{}", signature.upper())
    assert not verifier.verify(b"{}", signature + " ")
    assert not verifier.verify(b"{}", "sha1=" + signature.removeprefix("sha256="))


def test_a_missing_or_empty_signature_is_refused() -> None:
    verifier = WebhookVerifier(("s",))
    assert not verifier.verify(b"{}", None)
    assert not verifier.verify(b"{}", "")


def test_without_secrets_nothing_is_verified() -> None:
    verifier = WebhookVerifier(())
    assert not verifier.configured
    assert not verifier.verify(b"", sign("", b""))


@given(header=st.text(max_size=80))
def test_any_header_text_is_answered_without_raising(header: str) -> None:
    assert WebhookVerifier(("s",)).verify(b"{}", header) is (header == sign("s", b"{}"))


def test_non_ascii_header_bytes_as_aiohttp_decodes_them_are_refused() -> None:
    header = b"sha256=\xff\xfe".decode("utf-8", "surrogateescape")
    assert not WebhookVerifier(("s",)).verify(b"{}", header)


def test_secrets_and_tokens_never_show_in_a_repr() -> None:
    assert "hunter2" not in repr(WebhookVerifier(("hunter2",)))
    assert "hunter2" not in repr(BearerTokens.of(("hunter2",)))
    assert "hunter2" not in repr(IngressGrant("hunter2", ("urn:a",)))


# --- ingress bearer tokens: the same constant-time rule -----------------------------------
def test_a_configured_bearer_token_is_admitted_whatever_the_scheme_case() -> None:
    tokens = BearerTokens.of(("alpha", "beta"))
    assert tokens.admit("Bearer alpha")
    assert tokens.admit("bearer beta")
    assert tokens.admit("  BEARER   alpha ")


def test_anything_else_is_not_admitted() -> None:
    tokens = BearerTokens.of(("alpha",))
    for header in (None, "", "Bearer", "Bearer ", "alpha", "Basic alpha", "Bearer alph"):
        assert not tokens.admit(header), header
    assert not tokens.admit("Bearer alphaa")


def test_no_tokens_means_the_ingress_is_disabled() -> None:
    assert not BearerTokens.of(()).enabled
    assert not BearerTokens.of(()).admit("Bearer anything")


def test_the_token_is_read_from_the_authorization_header() -> None:
    assert bearer_token("Bearer abc.def") == "abc.def"
    assert bearer_token("Token abc") is None
