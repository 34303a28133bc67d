"""`miniwdl-serverless teardown`: delete a deployed stack, its versioned bucket included.

`sam delete` (and `aws cloudformation delete-stack`) fail with BucketNotEmpty on the stack's
bucket: it is versioned, so `aws s3 rm --recursive` only adds delete markers, and
`delete-objects` takes at most 1,000 keys. Here every object version and delete marker is
deleted, 1,000 a request, until a listing finds none, and then the stack. Runs still running
are refused (their Batch jobs would outlive the stack's tables) unless ``--force`` cancels them.
The EFS file system the stack created is retained (DeletionPolicy: Retain), and said so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from miniwdl_serverless.cli.stack import Clients, Stack, cancel_run, list_executions
from miniwdl_serverless.cli.submit import UsageError

DELETE_LIMIT = 1_000  # DeleteObjects: keys a request
LIVE_LIMIT = 1_000  # running executions looked at


def object_versions(page: dict[str, Any]) -> list[dict[str, str]]:
    """A ListObjectVersions page's versions and delete markers, as DeleteObjects' keys."""
    found = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
    return [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in found]


def chunks(keys: Iterable[dict[str, str]], size: int = DELETE_LIMIT) -> Iterator[list[Any]]:
    chunk: list[dict[str, str]] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every version and delete marker in ``bucket``; returns how many. Listed again
    until empty: an object written meanwhile (a submission dropped late) goes too."""
    deleted, found = 0, True
    while found:
        found = False
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for chunk in chunks(object_versions(page)):
                found = True
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                errors = answer.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise UsageError(
                        f"cannot delete s3://{bucket}/{first.get('Key')} "
                        f"({first.get('Code')}: {first.get('Message')}) and "
                        f"{len(errors) - 1} more: the stack was not deleted"
                    )
                deleted += len(chunk)
    return deleted


def _stack_bucket(clients: Clients, stack_name: str) -> str | None:
    """The bucket the stack itself created (its logical id Bucket), if it still exists."""
    resources = clients.client("cloudformation").describe_stack_resources(StackName=stack_name)
    for resource in resources["StackResources"]:
        if resource["LogicalResourceId"] == "Bucket" and resource.get("PhysicalResourceId"):
            return str(resource["PhysicalResourceId"])
    return None


def _confirm(stack_name: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"deleting stack {stack_name} and its bucket's contents: give --yes")
    typed = input(f"Delete stack {stack_name}, its bucket and its tables? Type its name: ")
    if typed.strip() != stack_name:
        raise UsageError("not confirmed: nothing was deleted")


def _stop_live_runs(clients: Clients, stack: Stack, force: bool) -> None:
    live = list_executions(clients, stack, LIVE_LIMIT, "RUNNING")
    if not live:
        return
    if not force:
        names = ", ".join(str(e["name"]) for e in live[:3])
        raise UsageError(
            f"{len(live)} runs still running ({names}{', ...' if len(live) > 3 else ''}): "
            "cancel them (miniwdl-serverless cancel RUN) or give --force to cancel them here"
        )
    for execution in live:
        cause = "cancelled by miniwdl-serverless teardown"
        cancel_run(clients, stack, str(execution["executionArn"]), cause)
        print(f"cancelled run {execution['name']}", file=sys.stderr)


def teardown(args: argparse.Namespace, clients: Clients, stack: Stack) -> int:
    name = stack.require("name", "stack name")
    _confirm(name, args.yes)
    _stop_live_runs(clients, stack, args.force)
    bucket = _stack_bucket(clients, name)
    if bucket:
        deleted = empty_bucket(clients.client("s3"), bucket)
        print(f"emptied s3://{bucket}: {deleted} object versions and delete markers deleted")
    cloudformation = clients.client("cloudformation")
    cloudformation.delete_stack(StackName=name)
    if args.no_wait:
        print(f"deleting stack {name} (not waiting)")
    else:
        cloudformation.get_waiter("stack_delete_complete").wait(
            StackName=name, WaiterConfig={"Delay": 10, "MaxAttempts": 180}
        )
        print(f"deleted stack {name}")
    file_system = stack.outputs.get("FileSystemId")
    if file_system:
        print(
            f"kept: EFS file system {file_system} and the results on it (DeletionPolicy "
            f"Retain); delete it with `aws efs delete-file-system --file-system-id "
            f"{file_system}` once its mount targets are gone"
        )
    return 0
