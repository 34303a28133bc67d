"""AWS services served in process to every boto3 client (the embedded AWS's default mode: its
Batch, local/batch_service.py, and its Step Functions, local/step_functions.py).

As botocore's own Stubber does, a handler on ``before-call.<service>`` answers with the parsed
response (AWS's shapes; an error as AWS's code and message, which botocore raises as the
client's modeled exception), so neither moto's emulation nor an HTTP request and its serializer
is in the way. A service not served (or an operation it does not have) goes on to moto.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

PARAMS = "msls_local_params"
_served: dict[str, list[Any]] = {}  # botocore's event name of a service → the one served
_hooked: set[str] = set()


class ServiceError(Exception):
    """The service refused the request: AWS's error code and message (HTTP 400)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class PassOn(Exception):
    """The server does not take this request: it goes on to moto's service."""


class _Http:
    """What botocore reads of the HTTP response an answer stands for."""

    def __init__(self, status_code: int):
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.content = b""


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """before-parameter-build: the call's own parameters (before-call sees them serialized)."""
    context[PARAMS] = params


def _answer(
    model: Any, context: dict[str, Any], event_name: str, **_: Any
) -> tuple[_Http, dict[str, Any]] | None:
    """before-call: the served service's answer (None: the request goes on, to moto)."""
    service = event_name.split(".")[1]
    served = _served.get(service)
    method = getattr(served[-1], _method(model.name), None) if served else None
    if method is None or PARAMS not in context:
        return None
    metadata = {"RequestId": uuid.uuid4().hex, "HTTPHeaders": {}, "RetryAttempts": 0}
    try:
        parsed = method(context[PARAMS])
    except PassOn:
        return None
    except ServiceError as exn:
        error = {"Code": exn.code, "Message": str(exn)}
        return _Http(400), {"Error": error, "ResponseMetadata": {**metadata, "HTTPStatusCode": 400}}
    parsed["ResponseMetadata"] = {**metadata, "HTTPStatusCode": 200}
    return _Http(200), parsed


def _method(operation: str) -> str:
    from botocore import xform_name

    return str(xform_name(operation))


@contextlib.contextmanager
def suspended(service: str) -> Iterator[None]:
    """moto's ``service`` for every client meanwhile (tests of moto's, in a process that holds
    an embedded AWS), then the served one again."""
    saved = _served.pop(service, None)
    try:
        yield
    finally:
        if saved is not None:
            _served[service] = saved


def serving(service: str) -> Any:
    """The object serving ``service`` (botocore's event name: "batch", "sfn"), or None."""
    served = _served.get(service)
    return served[-1] if served else None


def serve(service: str, server: Any) -> None:
    """Calls of ``service`` from every boto3 client, made from now on or already, go to
    ``server``'s methods, by operation name in snake case (None: to moto again). The hooks go
    where botocore's sessions take their handlers from, and onto boto3's default session if it
    exists already."""
    if server is None:
        _served.pop(service, None)
        return
    _served[service] = [server]
    if service in _hooked:
        return
    import boto3
    from botocore import handlers

    hooks = (
        (f"before-parameter-build.{service}", _keep_params),
        (f"before-call.{service}", _answer),
    )
    handlers.BUILTIN_HANDLERS.extend(hooks)
    if boto3.DEFAULT_SESSION is not None:
        events = boto3.DEFAULT_SESSION._session.get_component("event_emitter")
        for name, hook in hooks:
            events.register(name, hook, unique_id=f"msls-{name}")
    _hooked.add(service)
