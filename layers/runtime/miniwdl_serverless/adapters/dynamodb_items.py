"""The pynamodb item models of the runs, jobs and cache tables (see template.yaml), and their
binding to a table's name: each store binds its own, nothing global is switched."""

from __future__ import annotations

import os
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    NumberSetAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.models import Model

from miniwdl_serverless.adapters import clients
from miniwdl_serverless.controller.ports import CacheEntry
from miniwdl_serverless.core.records import JOB_FIELDS, RUN_FIELDS, Job, Run


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class RunItem(Model):
    """One workflow run (one Step Functions execution)."""

    class Meta:
        table_name = "miniwdl-serverless-runs"

    run_id = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(null=True)
    workflow_name = UnicodeAttribute(null=True)
    run_dir = UnicodeAttribute(null=True)
    run_dir_created = BooleanAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)
    task_token = UnicodeAttribute(null=True)
    options = JSONAttribute(null=True)
    bundle_path = UnicodeAttribute(null=True)
    bundle_digest = UnicodeAttribute(null=True)
    inputs = JSONAttribute(null=True)
    outputs = JSONAttribute(null=True)
    error = JSONAttribute(null=True)
    created_at = NumberAttribute(null=True)
    finished_at = NumberAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # the table's TTL attribute
    jobs_total = NumberAttribute(null=True)
    jobs_done = NumberAttribute(null=True)
    calls_submitted = NumberAttribute(null=True)
    calls_running = NumberAttribute(null=True)
    calls_succeeded = NumberAttribute(null=True)
    calls_failed = NumberAttribute(null=True)
    calls_retried = NumberAttribute(null=True)
    calls_cached = NumberAttribute(null=True)
    answer_due = JSONAttribute(null=True)  # removed once the token's answer was sent
    uploaded_to = UnicodeAttribute(null=True)  # set once every output is uploaded


class JobItem(Model):
    """One job of the expanded graph. An item with only ``waiters`` is a stub: later jobs
    registered on it before it was created; one with only ``members`` is a bucket of a
    gather's tally (``core/store_rules.py:tally_item_id``). Neither has a ``status``."""

    class Meta:
        table_name = "miniwdl-serverless-jobs"

    run_id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute(range_key=True)
    node_id = UnicodeAttribute(null=True)
    scope = UnicodeAttribute(null=True)
    call_path: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    deps: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    dependents: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    shards = JSONAttribute(null=True)  # a scatter's gather: its shards, described (not listed)
    tally = JSONAttribute(null=True)  # a shard: where it is counted into its gather
    tallied = NumberSetAttribute(null=True)  # a gather: the buckets counted (each once)
    members = NumberSetAttribute(null=True)  # a gather's bucket item: the shards counted
    # a bucket item: its shards' share of the run's counters (store_rules.BUCKET_COUNTERS)
    jobs_done = NumberAttribute(null=True)
    calls_succeeded = NumberAttribute(null=True)
    calls_cached = NumberAttribute(null=True)
    waiters: ListAttribute[str] = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[arg-type]
    waiters_version = NumberAttribute(null=True)
    pending = NumberAttribute(null=True)
    awaiting = UnicodeSetAttribute(null=True)  # a set: each dependency given back once
    status = UnicodeAttribute(null=True)
    claimed_by = UnicodeAttribute(null=True)
    scatter_stack = JSONAttribute(null=True)
    outputs = JSONAttribute(null=True)
    call_inputs = JSONAttribute(null=True)
    task_state = JSONAttribute(null=True)
    runtime = JSONAttribute(null=True)
    attempt = NumberAttribute(null=True)
    interruptions = NumberAttribute(null=True)
    batch_job_id = UnicodeAttribute(null=True)
    batch_job_name = UnicodeAttribute(null=True)
    queue = UnicodeAttribute(null=True)
    log_stream = UnicodeAttribute(null=True)
    submitted_at = NumberAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    lease_holder = UnicodeAttribute(null=True)
    started_at = NumberAttribute(null=True)
    finished_at = NumberAttribute(null=True)
    error = JSONAttribute(null=True)
    cached_from = UnicodeAttribute(null=True)
    expires_at = NumberAttribute(null=True)  # the table's TTL attribute (stubs have it too)


class CacheItem(Model):
    """One entry of the cache table: a download of one version of a URI (``download:…``) or a
    call-cache entry (``call:…``), shared by every run of the stack."""

    class Meta:
        table_name = "miniwdl-serverless-cache"

    key = UnicodeAttribute(hash_key=True)
    status = UnicodeAttribute(null=True)
    claimant = UnicodeAttribute(null=True)
    lease_until = NumberAttribute(null=True)
    waiters = UnicodeSetAttribute(null=True)
    data = JSONAttribute(null=True)
    updated_at = NumberAttribute(null=True)


class WorkTableItem(Model):
    """One item of the work table (core/work.py): its stream hands each new one to the
    submitter or the work function."""

    class Meta:
        table_name = "miniwdl-serverless-work"

    key = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    run_id = UnicodeAttribute()
    body = UnicodeAttribute()
    expires_at = NumberAttribute()


def bound(base: type[Model], table: str, host: str | None) -> type[Model]:
    """The item model bound to one table (each store its own; nothing global is switched),
    with the timeouts, attempts and adaptive retry mode of adapters/clients.py."""
    settings = {"table_name": table, "region": _region(), "host": host, **clients.pynamodb_meta()}
    meta = type("Meta", (), settings)
    namespace = {"Meta": meta, "_get_connection": classmethod(_adaptive_connection)}
    return type(f"{base.__name__}_{table}", (base,), namespace)


def _adaptive_connection(cls: type[Model]) -> Any:
    """The model's table connection, its retries botocore's adaptive mode. pynamodb's Meta
    takes the attempts but not the mode (its Connection takes ``retry_configuration``, which
    the model does not pass on): set here before the connection makes its client."""
    table_connection = Model._get_connection.__func__(cls)  # type: ignore[attr-defined]
    connection = table_connection.connection
    if connection._client is None:
        connection._retry_configuration = clients.retries()
    return table_connection


def record(item: Model, record_type: type[Any], fields: frozenset[str]) -> Any:
    values = {k: v for k, v in item.attribute_values.items() if k in fields and v is not None}
    return record_type(**values)


def cache_entry(item: Any) -> CacheEntry:
    """A cache table item as the CacheStore port's entry."""
    return CacheEntry(
        key=item.key,
        status=item.status or "",
        claimant=item.claimant,
        lease_until=item.lease_until,
        waiters=set(item.waiters or ()),
        data=dict(item.data or {}),
    )


def run_record(item: Model) -> Run:
    return record(item, Run, RUN_FIELDS)  # type: ignore[no-any-return]


def job_record(item: Model) -> Job | None:
    """The job an item holds; None for a stub holding only waiters."""
    if item.attribute_values.get("status") is None:
        return None
    job: Job = record(item, Job, JOB_FIELDS)
    if job.awaiting is not None:
        job.awaiting = sorted(job.awaiting)  # a string set in the item
    if job.tallied is not None:
        job.tallied = sorted(int(bucket) for bucket in job.tallied)  # a number set
    return job
