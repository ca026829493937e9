"""Error taxonomy: one root, errors as data, the one table that says what is worth retrying,
and the one function that turns any of them into the ``error`` of a failure event.

Pure: no I/O imports. Adapters raise these; consumers turn them into outcomes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

# Codes of the relay's own (contract §4); MsgFlash codes pass through unchanged.
INVALID_EVENT = "INVALID_EVENT"
INSTANCE_NOT_FOUND = "INSTANCE_NOT_FOUND"
INSTANCE_AMBIGUOUS = "INSTANCE_AMBIGUOUS"
RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"
OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
MSGFLASH_UNREACHABLE = "MSGFLASH_UNREACHABLE"
MSGFLASH_TIMEOUT = "MSGFLASH_TIMEOUT"
MSGFLASH_BAD_RESPONSE = "MSGFLASH_BAD_RESPONSE"

# Tether (contract §8): the relay's own codes; Tether's error codes pass through unchanged.
TETHER_DAILY_QUOTA_EXCEEDED = "TETHER_DAILY_QUOTA_EXCEEDED"
TETHER_AUTH_FAILED = "TETHER_AUTH_FAILED"
PROVIDER_NOT_CONFIGURED = "PROVIDER_NOT_CONFIGURED"
ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
TETHER_UNREACHABLE = "TETHER_UNREACHABLE"
TETHER_TIMEOUT = "TETHER_TIMEOUT"
TETHER_BAD_RESPONSE = "TETHER_BAD_RESPONSE"

# What a failure event's ``error.code`` may hold besides the providers' own codes.
RELAY_ERROR_CODES = (
    INVALID_EVENT,
    INSTANCE_NOT_FOUND,
    INSTANCE_AMBIGUOUS,
    RETRIES_EXHAUSTED,
    OUTCOME_UNKNOWN,
    MSGFLASH_UNREACHABLE,
    MSGFLASH_TIMEOUT,
    MSGFLASH_BAD_RESPONSE,
    TETHER_DAILY_QUOTA_EXCEEDED,
    TETHER_AUTH_FAILED,
    PROVIDER_NOT_CONFIGURED,
    TETHER_UNREACHABLE,
    TETHER_TIMEOUT,
    TETHER_BAD_RESPONSE,
)

RATE_LIMITED = "API_RATE_LIMIT_EXCEEDED"
OUTBOUND_QUOTA = "MONTHLY_OUTBOUND_QUOTA_EXCEEDED"
API_REQUEST_QUOTA = "MONTHLY_API_REQUEST_QUOTA_EXCEEDED"
QUOTA_CODES = frozenset({OUTBOUND_QUOTA, API_REQUEST_QUOTA})


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One thing wrong with one field: the unit of every ``details`` list, ours or a provider's.

    ``extra`` holds named values a problem may carry besides its message (the date a refused
    Tether campaign would fit on), so ``details`` stays one type however much a problem says.
    """

    field: str
    message: str
    extra: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, str]:
        """The wire item: ``field`` and ``message``, then the extra values by name (which can
        never replace the first two)."""
        return {**dict(self.extra), "field": self.field, "message": self.message}

    @classmethod
    def from_json(cls, item: object) -> FieldProblem:
        """One item of a provider's ``details`` array; whatever is not ``{field, message}`` is
        kept whole as the message, so nothing the provider said is lost."""
        if isinstance(item, dict):
            field, message = item.get("field", item.get("path")), item.get("message")
            if isinstance(field, str) and isinstance(message, str):
                return cls(field, message)
        return cls("", item if isinstance(item, str) else json.dumps(item, default=str))


Details = tuple[FieldProblem, ...]


class RelayError(Exception):
    """Root of every error the relay raises on purpose."""

    code: str = "RELAY_ERROR"
    http_status: int | None = None
    details: Details = ()

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def retryable(self) -> bool:
        return classify(self.code, self.http_status) is not RetryClass.PERMANENT


class ConfigError(RelayError):
    """Invalid settings: the message names each variable at fault and what to do."""

    code = "INVALID_CONFIGURATION"


class InvalidCommand(RelayError):
    """A command that can never succeed as sent: bad JSON, schema violation, unknown type."""

    code = INVALID_EVENT

    def __init__(self, message: str, details: Details = ()) -> None:
        super().__init__(message)
        self.details = details

    @property
    def retryable(self) -> bool:
        return False


class InstanceResolutionError(RelayError):
    """The command's ``instance`` names no instance, or more than one."""

    @property
    def retryable(self) -> bool:
        return False  # naming another instance is the only fix


class TopologyConflict(RelayError):
    """An existing exchange or queue was declared with other arguments than the relay's."""

    code = "TOPOLOGY_CONFLICT"


class BrokerUnavailable(RelayError):
    """The broker cannot take a publish right now (connection down or confirm refused)."""

    code = "BROKER_UNAVAILABLE"


class StoreUnavailable(RelayError):
    """The state store did not answer (down, unreachable, or its reply was lost)."""

    code = "STATE_STORE_UNAVAILABLE"


class CallNotMarked(StoreUnavailable):
    """The store did not confirm the record made right before a provider call, so the call was
    not made. The record may still have been written (its reply lost): a successor that finds
    this holder's claim expired must know that this holder sent nothing."""


class NoQueueBound(RelayError):
    """The broker returned a publish: no queue is bound for its routing key (configuration)."""

    code = "NO_QUEUE_BOUND"


class ClaimLost(RelayError):
    """This holder's claim on a command was taken over (it was presumed dead): it must not call
    the provider, since the new holder may be calling already."""

    code = "CLAIM_LOST"


class RetryClass(Enum):
    """How a failed provider call should be treated; the whole retry policy keys off this."""

    PERMANENT = "permanent"  # retrying cannot help: report the failure
    RATE_LIMITED = "rate_limited"  # per-second limiter: short waits
    QUOTA = "quota"  # monthly quota: every call with this key fails until reset
    TRANSIENT = "transient"  # 5xx, connection errors, timeouts


# The one table. Codes first (they are more precise than statuses), then statuses.
_BY_CODE: dict[str, RetryClass] = {
    RATE_LIMITED: RetryClass.RATE_LIMITED,
    OUTBOUND_QUOTA: RetryClass.QUOTA,
    API_REQUEST_QUOTA: RetryClass.QUOTA,
    MSGFLASH_UNREACHABLE: RetryClass.TRANSIENT,
    MSGFLASH_TIMEOUT: RetryClass.TRANSIENT,
    TETHER_UNREACHABLE: RetryClass.TRANSIENT,
    TETHER_TIMEOUT: RetryClass.TRANSIENT,
    TETHER_AUTH_FAILED: RetryClass.PERMANENT,
    TETHER_DAILY_QUOTA_EXCEEDED: RetryClass.PERMANENT,
    PROVIDER_NOT_CONFIGURED: RetryClass.PERMANENT,
    ACCOUNT_NOT_FOUND: RetryClass.PERMANENT,
    "INTERNAL_ERROR": RetryClass.TRANSIENT,
    "PROVIDER_TIMEOUT": RetryClass.TRANSIENT,
    "PROVIDER_UNAVAILABLE": RetryClass.TRANSIENT,
    "PROVIDER_ERROR": RetryClass.TRANSIENT,
}


def classify(code: str | None, http_status: int | None) -> RetryClass:
    """Is a failure worth retrying, and how? One table instead of ``if`` chains."""
    if code is not None and code in _BY_CODE:
        return _BY_CODE[code]
    if http_status is None:
        return RetryClass.TRANSIENT
    if http_status == 429:
        return RetryClass.RATE_LIMITED
    if http_status in (408, 425) or http_status >= 500:
        return RetryClass.TRANSIENT
    return RetryClass.PERMANENT


class ProviderError(RelayError):
    """A provider call that did not succeed, as data: code, HTTP status, retryability.

    The common base of ``MsgFlashError`` and ``TetherError``, so outcomes and failure events are
    built the same way whichever provider failed.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None = None,
        details: Details = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.http_status = http_status
        self.details = details
        self.retry_after = retry_after
        self.retry_class = classify(code, http_status)

    @property
    def unanswered(self) -> bool:
        """True when no answer came after the request went out: it may have been acted on."""
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, http_status={self.http_status!r})"


class MsgFlashError(ProviderError):
    """A MsgFlash call that did not succeed."""


class MsgFlashNoResponse(MsgFlashError):
    """No HTTP response came back. ``request_sent`` says whether MsgFlash may have acted on it.

    A refused connection (``request_sent=False``) is safe to repeat; a timeout or a connection
    dropped after the request went out may have created the message, and MsgFlash has no
    idempotency key, so a creating call must be reconciled before it is sent again.
    """

    def __init__(self, code: str, message: str, *, request_sent: bool) -> None:
        super().__init__(code, message)
        self.request_sent = request_sent

    @property
    def unanswered(self) -> bool:
        return self.request_sent


class MsgFlashOutcomeUnknown(MsgFlashNoResponse):
    """A creating call went unanswered and MsgFlash could not be asked whether it landed.

    Not retried in-process: a caller that retries later should first look for the message
    (``reconcile.find_created_message``), as this call would have.
    """

    def __init__(self, message: str) -> None:
        super().__init__(OUTCOME_UNKNOWN, message, request_sent=True)


class TetherError(ProviderError):
    """A Tether call that did not succeed (any of its three error-body shapes, read as one)."""


class TetherNoResponse(TetherError):
    """No HTTP answer from Tether; ``request_sent`` says whether Tether may have acted on it."""

    def __init__(self, code: str, message: str, *, request_sent: bool) -> None:
        super().__init__(code, message)
        self.request_sent = request_sent

    @property
    def unanswered(self) -> bool:
        return self.request_sent


class TetherOutcomeUnknown(TetherNoResponse):
    """A campaign create went unanswered and Tether's campaign list could not be read to check.

    Not retried in-process: Tether has no idempotency key, so the next try looks first.
    """

    def __init__(self, message: str) -> None:
        super().__init__(OUTCOME_UNKNOWN, message, request_sent=True)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """Why a command failed, as the failure event reports it."""

    code: str
    message: str
    http_status: int | None = None
    retryable: bool = False
    details: Details = ()


def error_info(exc: RelayError) -> ErrorInfo:
    """The failure-event ``error`` of any relay error: every error carries its own data."""
    return ErrorInfo(exc.code, exc.message, exc.http_status, exc.retryable, exc.details)
