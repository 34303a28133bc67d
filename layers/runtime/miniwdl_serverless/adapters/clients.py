"""Every AWS client the Lambdas and the CLI make, made here with one botocore configuration:
botocore's *adaptive* retry mode (standard retries plus a client-side rate limiter that slows
down once the service throttles), a bounded number of attempts and connect/read timeouts.
Nothing else in the package calls ``boto3.client`` (tests/unit/test_clients.py checks).

DynamoDB goes through pynamodb, which makes its own botocore client: ``pynamodb_meta`` gives
its models the same timeouts and attempts, and adapters/dynamodb_items.py:bound its connection
the same retry mode (``retries()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config

# Retries after the first attempt: botocore's ``max_attempts`` counts retries (it makes it
# ``total_max_attempts`` = 5 tries in all; the standard mode's default is 3 in all). Above
# these, adapters/retrying.py:Retrying retries transient failures of the ports it wraps.
MAX_RETRIES = 4
CONNECT_TIMEOUT_SECONDS = 5.0
# Long enough for a multipart upload's part and Batch's slower calls; botocore's is 60 s.
READ_TIMEOUT_SECONDS = 60.0
RETRY_MODE = "adaptive"


def retries() -> dict[str, Any]:
    return {"mode": RETRY_MODE, "max_attempts": MAX_RETRIES}


def config(extra: Config | None = None) -> Config:
    """The shared configuration, with ``extra``'s settings (a pool size, unsigned requests)
    on top; its ``retries`` replace the shared ones only if it sets them."""
    from botocore.config import Config

    shared = Config(
        retries=retries(),  # type: ignore[arg-type]
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )
    return shared.merge(extra) if extra is not None else shared


def client(service: str, extra: Config | None = None, **kwargs: Any) -> Any:
    """A boto3 client of ``service`` with the shared configuration (``extra`` merged in);
    ``kwargs`` go to ``boto3.client`` (region_name, endpoint_url)."""
    import boto3  # imported on first use: a handler pays for it only when it makes a client

    return boto3.client(service, config=config(extra), **kwargs)


def pynamodb_meta() -> dict[str, Any]:
    """The settings a pynamodb model's Meta takes (pynamodb passes them to its client)."""
    return {
        "connect_timeout_seconds": CONNECT_TIMEOUT_SECONDS,
        "read_timeout_seconds": READ_TIMEOUT_SECONDS,
        "max_retry_attempts": MAX_RETRIES,  # retries, as botocore's max_attempts
    }
