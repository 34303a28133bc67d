"""Which AWS SDK errors are transient (a retry may succeed) and which are not, for the
Retrying wrapper (adapters/retrying.py)."""

from __future__ import annotations

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pynamodb.exceptions import PynamoDBException, TransactWriteError

from miniwdl_serverless.adapters.retrying import Failure

# Throttling (DynamoDB, Batch, Step Functions): refused, nothing done
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
    }
)
TRANSIENT_CODES = THROTTLING_CODES | frozenset(
    {
        # the service's own trouble
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "ServerException",
        # DynamoDB transactions that met another one on the same items
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
# Why one item of a cancelled transaction failed, when a retry may succeed
TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"}
)
NETWORK = (ConnectionError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError)


def classify(exn: BaseException) -> Failure | None:
    """Failure.TRANSIENT, Failure.ERROR, or None for exceptions that are not the SDK's."""
    if isinstance(exn, PynamoDBException):
        return _pynamodb(exn)
    if isinstance(exn, ClientError):
        return _code(exn)
    if isinstance(exn, NETWORK):
        return Failure.TRANSIENT
    if isinstance(exn, BotoCoreError):
        return Failure.ERROR
    return None


def _pynamodb(exn: PynamoDBException) -> Failure:
    if isinstance(exn, TransactWriteError):
        reasons = {r.code for r in (exn.cancellation_reasons or []) if r is not None}
        if reasons & TRANSIENT_REASONS:
            return Failure.TRANSIENT
    if exn.cause_response_code in TRANSIENT_CODES:
        return Failure.TRANSIENT
    if isinstance(exn.cause, NETWORK):
        return Failure.TRANSIENT
    return Failure.ERROR


def _code(exn: ClientError) -> Failure:
    error = exn.response.get("Error", {})
    status = int(exn.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if error.get("Code") in THROTTLING_CODES or status == 429:
        return Failure.THROTTLED
    if error.get("Code") in TRANSIENT_CODES or status >= 500:
        return Failure.TRANSIENT
    return Failure.ERROR
