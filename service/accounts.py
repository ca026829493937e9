"""The provider accounts one relay serves (contract §7): read from ``RELAY_ACCOUNTS_FILE``, or
one account ``default`` built from the v1 variables, so v1 deployments keep working unchanged.

The one place that turns credentials into values: the file names environment variables
(a Kubernetes Secret fills them), never the secrets themselves. Every mistake stops the relay
at start with a message naming the account and the key at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.contract.errors import ConfigError
from service.settings import DEFAULT_ACCOUNT, Settings

ACCOUNT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
_SETTING = "RELAY_ACCOUNTS_FILE"


@dataclass(frozen=True, slots=True)
class MsgFlashAccount:
    """One MsgFlash API key and what goes with it. Secrets never appear in a repr."""

    name: str
    api_key: str = field(repr=False)
    base_url: str
    rate_limit: float
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    default_instance: str | None = None


@dataclass(frozen=True, slots=True)
class TetherAccount:
    """One Tether organisation: a static token, or an email and password to log in with."""

    name: str
    base_url: str | None
    rate_limit: float
    api_token: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Accounts:
    """Every account by name, per provider. In a file each name is used once; the v1 account
    ``default`` may hold both a MsgFlash key and a Tether organisation."""

    msgflash: Mapping[str, MsgFlashAccount]
    tether: Mapping[str, TetherAccount] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.msgflash, *self.tether)))

    def secrets(self) -> tuple[str, ...]:
        """Everything the log redaction must hide."""
        found: list[str] = []
        for account in self.msgflash.values():
            found += [account.api_key, *account.webhook_secrets]
        for tether in self.tether.values():
            found += [s for s in (tether.api_token, tether.password) if s]
        return tuple(found)


def load_accounts(settings: Settings, env: Mapping[str, str]) -> Accounts:
    """The accounts file when ``RELAY_ACCOUNTS_FILE`` is set (an account ``default`` in it
    replaces the v1 one), else the v1 account alone."""
    v1 = v1_accounts(settings)
    if settings.relay_accounts_file is None:
        return v1
    path = Path(settings.relay_accounts_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{_SETTING}: cannot read {str(path)!r} ({exc.strerror}); point it at the accounts "
            "file, or unset it to run one account from the MSGFLASH_* variables"
        ) from None
    accounts = parse_accounts(text, source=str(path), settings=settings, env=env)
    if DEFAULT_ACCOUNT in accounts.names():
        return accounts
    return Accounts(
        msgflash={**v1.msgflash, **accounts.msgflash}, tether={**v1.tether, **accounts.tether}
    )


def v1_accounts(settings: Settings) -> Accounts:
    """Account ``default``: MSGFLASH_API_KEY, MSGFLASH_WEBHOOK_SECRET and friends, and the
    TETHER_* organisation when its credentials are set (or the sandbox stands in for it)."""
    msgflash = MsgFlashAccount(
        name=DEFAULT_ACCOUNT,
        api_key=settings.api_key,
        base_url=settings.msgflash_url,
        rate_limit=settings.msgflash_rate_limit,
        webhook_secrets=settings.webhook_secrets,
        default_instance=settings.relay_default_instance,
    )
    token, email, password = (
        secret.get_secret_value() if secret is not None else None
        for secret in (settings.tether_api_token, settings.tether_email, settings.tether_password)
    )
    if token is None and (email is None or password is None) and not settings.relay_sandbox:
        return Accounts(msgflash={DEFAULT_ACCOUNT: msgflash})
    tether = TetherAccount(
        name=DEFAULT_ACCOUNT,
        base_url=settings.tether_url,
        rate_limit=settings.tether_rate_limit,
        api_token=token,
        email=email,
        password=password,
    )
    return Accounts(msgflash={DEFAULT_ACCOUNT: msgflash}, tether={DEFAULT_ACCOUNT: tether})


def parse_accounts(
    text: str, *, source: str, settings: Settings, env: Mapping[str, str]
) -> Accounts:
    """Accounts from the file's text (YAML, of which JSON is a subset)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(
            f"{_SETTING} ({source}): not valid YAML or JSON{line}: fix the file's syntax"
        ) from None
    try:
        entries = _AccountsFile.model_validate(document).accounts
    except ValidationError as exc:
        raise ConfigError(_describe(exc, document, source)) from None
    _refuse_duplicates(entries, source)
    resolve = _Resolver(env, source)
    msgflash = {
        e.name: resolve.msgflash(e, settings) for e in entries if isinstance(e, _MsgFlashEntry)
    }
    tether = {e.name: resolve.tether(e, settings) for e in entries if isinstance(e, _TetherEntry)}
    return Accounts(msgflash=msgflash, tether=tether)


# --- the file's shape -------------------------------------------------------------------------
class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    name: str = Field(pattern=ACCOUNT_NAME_PATTERN)
    rate_limit: float | None = Field(default=None, gt=0, alias="rateLimit")
    base_url: str | None = Field(default=None, alias="baseUrl", pattern=r"^https?://\S+$")


class _MsgFlashEntry(_Entry):
    provider: Literal["msgflash"]
    api_key_env: str = Field(alias="apiKeyEnv")
    webhook_secrets_env: str | None = Field(default=None, alias="webhookSecretsEnv")
    default_instance: str | None = Field(default=None, alias="defaultInstance")


class _TetherEntry(_Entry):
    provider: Literal["tether"]
    token_env: str | None = Field(default=None, alias="tokenEnv")
    email_env: str | None = Field(default=None, alias="emailEnv")
    password_env: str | None = Field(default=None, alias="passwordEnv")


class _AccountsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accounts: list[Annotated[_MsgFlashEntry | _TetherEntry, Field(discriminator="provider")]]


def _describe(exc: ValidationError, document: Any, source: str) -> str:
    lines = [f"{_SETTING} ({source}): invalid accounts file:"]
    for error in exc.errors():
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "accounts" and isinstance(loc[1], int):
            account = _entry_name(document, loc[1])
            key = ".".join(str(part) for part in loc[3:] or loc[2:3]) or "(entry)"
            if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
                key = "provider"
            what = _problem(error, key)
            lines.append(f"  account {account}: key {key!r}: {what}")
        else:
            lines.append(f"  {'.'.join(map(str, loc)) or '(top level)'}: {_problem(error, '')}")
    return "\n".join(lines)


def _problem(error: Any, key: str) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key: remove it or fix its spelling (see the README's accounts section)"
    if kind == "missing":
        return "is required but missing: add it"
    if kind == "union_tag_invalid":
        return "provider must be 'msgflash' or 'tether'"
    if kind == "string_pattern_mismatch" and key == "name":
        return "must be 1 to 32 lowercase letters, digits or '-', starting with a letter or digit"
    return str(error["msg"])


def _entry_name(document: Any, index: int) -> str:
    try:
        name = document["accounts"][index]["name"]
    except (TypeError, KeyError, IndexError):
        name = None
    return repr(name) if isinstance(name, str) else f"#{index + 1}"


def _refuse_duplicates(entries: list[_MsgFlashEntry | _TetherEntry], source: str) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.name in seen:
            raise ConfigError(
                f"{_SETTING} ({source}): account {entry.name!r}: key 'name': appears more than "
                "once; give each account its own name"
            )
        seen.add(entry.name)


@dataclass(frozen=True, slots=True)
class _Resolver:
    """Reads the variables the file names, naming account and key when one is unset."""

    env: Mapping[str, str]
    source: str

    def msgflash(self, entry: _MsgFlashEntry, settings: Settings) -> MsgFlashAccount:
        secrets = self._optional(entry.name, "webhookSecretsEnv", entry.webhook_secrets_env)
        return MsgFlashAccount(
            name=entry.name,
            api_key=self._required(entry.name, "apiKeyEnv", entry.api_key_env),
            base_url=entry.base_url or settings.msgflash_url,
            rate_limit=entry.rate_limit or settings.msgflash_rate_limit,
            webhook_secrets=tuple(s.strip() for s in (secrets or "").split(",") if s.strip()),
            default_instance=entry.default_instance,
        )

    def tether(self, entry: _TetherEntry, settings: Settings) -> TetherAccount:
        if entry.token_env is None and (entry.email_env is None or entry.password_env is None):
            raise ConfigError(
                f"{_SETTING} ({self.source}): account {entry.name!r}: key 'tokenEnv': a Tether "
                "account needs tokenEnv, or emailEnv and passwordEnv"
            )
        return TetherAccount(
            name=entry.name,
            base_url=entry.base_url,
            rate_limit=entry.rate_limit or settings.tether_rate_limit,
            api_token=self._optional(entry.name, "tokenEnv", entry.token_env),
            email=self._optional(entry.name, "emailEnv", entry.email_env),
            password=self._optional(entry.name, "passwordEnv", entry.password_env),
        )

    def _required(self, account: str, key: str, variable: str) -> str:
        value = self.env.get(variable, "")
        if not value:
            raise ConfigError(
                f"{_SETTING} ({self.source}): account {account!r}: key {key!r} names "
                f"{variable}, which is not set: set it (from your secret store) or fix the name"
            )
        return value

    def _optional(self, account: str, key: str, variable: str | None) -> str | None:
        return None if variable is None else self._required(account, key, variable)
