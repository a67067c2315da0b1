"""The DynamoDB adapter's error boundary: every botocore exception becomes a library error.

* unreachable, timed out, throttled, or a 5xx:
  :class:`~serverless_sessions.errors.StorageUnavailableError`;
* no region or no credentials found: :class:`~serverless_sessions.errors.ConfigurationError`;
* anything else (access denied, missing table, validation):
  :class:`~serverless_sessions.errors.StorageError`.

A failed condition is not an error here: :func:`lost_condition` recognises it and the caller
decides (a conflict, or another round). Messages name backend, operation, table and key, carry
the original as ``__cause__``, and never a credential: signature errors, whose text can echo
signed headers (a session token among them), keep their code and lose their text.
"""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from serverless_sessions.errors import ConfigurationError, StorageError, StorageUnavailableError

__all__ = ["error_code", "lost_condition", "translate_error"]

_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        "LimitExceededException",
    }
)
# Cancellation reasons of a transaction meaning "try again later".
_TRANSIENT_REASONS = frozenset({"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})
# Cancellation reasons meaning "another writer got there first".
_LOST_REASONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})
_SILENT_CODES = frozenset(
    {"InvalidSignatureException", "IncompleteSignature", "IncompleteSignatureException"}
)


def error_code(exc: ClientError) -> str:
    """The service's error code (``""`` if it sent none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _reasons(exc: ClientError) -> list[str]:
    reasons = exc.response.get("CancellationReasons", [])
    return [str(reason.get("Code", "None")) for reason in reasons]


def lost_condition(exc: ClientError) -> bool:
    """Whether a write failed only because the item changed, and nothing else went wrong.

    That is a failed condition, or a concurrent transaction on the same items.
    """
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionConflictException":
        return True
    if code == "TransactionCanceledException":
        reasons = {reason for reason in _reasons(exc) if reason != "None"}
        return bool(reasons) and reasons <= _LOST_REASONS
    return False


def translate_error(
    exc: BaseException, *, backend: str, operation: str, table: str, key: str | None
) -> StorageError | ConfigurationError:
    """The library error for a botocore exception (never holding a credential)."""
    where = f"{backend} {operation} failed (table {table!r}" + (f", key {key!r})" if key is not None else ")")
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        message = "" if code in _SILENT_CODES else str(exc.response.get("Error", {}).get("Message", ""))
        reasons = _reasons(exc)
        text = f"{where}: {code or status}" + (f": {message}" if message else "")
        if reasons:
            text += f" (reasons: {', '.join(reasons)})"
        if code in _TRANSIENT_CODES or status >= 500 or _TRANSIENT_REASONS.intersection(reasons):
            return StorageUnavailableError(text)
        return StorageError(text)
    if isinstance(exc, NoRegionError):
        return ConfigurationError(f"{where}: no AWS region: add ?region=... or set AWS_DEFAULT_REGION")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ConfigurationError(
            f"{where}: no usable AWS credentials in the environment, shared files or instance role"
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return StorageUnavailableError(f"{where}: unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, BotoCoreError):
        return StorageError(f"{where}: {type(exc).__name__}: {exc}")
    return StorageError(f"{where}: {type(exc).__name__}")
