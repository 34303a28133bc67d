"""The tables of the local state directory, for each way the embedded AWS holds them.

``MotoTables``: every DynamoDB table of moto's account (``--embedded-aws full``, and any table
made through boto3 in the default mode). ``MemoryTables``: the template's runs, jobs and cache
tables held by the in-memory store (adapters/memory.py, the default mode), converted to and
from DynamoDB JSON with the DynamoDB adapter's own item models, so a state directory is the
same whichever mode wrote it; the tables it does not hold go to ``MotoTables``. Those models
(pynamodb: ~20 ms of imports) are imported by the conversions, when a state directory is
loaded or saved: the default mode uses no DynamoDB otherwise.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from miniwdl_serverless.adapters.memory import Bucket, MemoryCache, MemoryStore
from miniwdl_serverless.core.records import JOB_FIELDS, Job, Run
from miniwdl_serverless.core.store_rules import BUCKET_COUNTERS, FINISHED_RUN_TTL_SECONDS
from miniwdl_serverless.local import moto_patches
from miniwdl_serverless.local.state import Collection, Item

if TYPE_CHECKING:  # the item models (pynamodb) are imported where items are converted
    from miniwdl_serverless.adapters.dynamodb_items import JobItem, RunItem
    from miniwdl_serverless.controller.ports import CacheEntry


class Tables(Protocol):
    """What the state directory's load and save need of the embedded AWS's tables."""

    def shapes(self) -> dict[str, Collection]: ...  # table → its key, TTL attribute (no items)

    def items(self, table: str) -> list[Item]: ...

    def put_items(self, table: str, items: list[Item]) -> None: ...

    def create(self, table: str, collection: Collection) -> None: ...


class MotoTables:
    """moto's DynamoDB tables (through boto3 for their shapes, directly for their items)."""

    def __init__(self, account: str, region: str):
        self.account, self.region = account, region

    @property
    def client(self) -> Any:
        from miniwdl_serverless.adapters import clients

        return clients.client("dynamodb")

    def shapes(self) -> dict[str, Collection]:
        found = {}
        dynamodb = self.client
        for page in dynamodb.get_paginator("list_tables").paginate():
            for name in page["TableNames"]:
                table = dynamodb.describe_table(TableName=name)["Table"]
                shape = _shape(table["KeySchema"], table["AttributeDefinitions"])
                ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                if ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName"):
                    shape.ttl_attribute = ttl["AttributeName"]
                found[name] = shape
        return found

    def items(self, table: str) -> list[Item]:
        return moto_patches.table_items(self.account, self.region, table)

    def put_items(self, table: str, items: list[Item]) -> None:
        moto_patches.put_table_items(self.account, self.region, table, items)

    def create(self, table: str, collection: Collection) -> None:
        dynamodb = self.client
        dynamodb.create_table(
            TableName=table,
            KeySchema=collection.meta["KeySchema"],
            AttributeDefinitions=collection.meta["AttributeDefinitions"],
            BillingMode="PAY_PER_REQUEST",
        )
        if collection.ttl_attribute != Collection([]).ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={
                    "Enabled": True,
                    "AttributeName": collection.ttl_attribute,
                },
            )


def _shape(key_schema: list[dict[str, str]], attributes: list[dict[str, str]]) -> Collection:
    schema = sorted(key_schema, key=lambda k: k["KeyType"] != "HASH")
    meta = {"KeySchema": schema, "AttributeDefinitions": attributes}
    return Collection([k["AttributeName"] for k in schema], meta=meta)


@dataclass
class TableSpec:
    """One of the template's tables: its name and what creates it."""

    name: str
    key_schema: list[dict[str, str]]
    attributes: list[dict[str, str]]


class MemoryTables:
    """The runs, jobs and cache tables in the in-memory store; other tables in moto (only
    asked when one exists there, so that the default mode never starts moto's DynamoDB)."""

    def __init__(
        self,
        roles: dict[str, TableSpec],  # "runs", "jobs", "cache" → the table
        store: MemoryStore,
        cache: MemoryCache,
        others: MotoTables,
    ):
        self.roles, self.store, self.cache, self.others = roles, store, cache, others
        self.by_name = {spec.name: role for role, spec in roles.items()}

    def shapes(self) -> dict[str, Collection]:
        found = {s.name: _shape(s.key_schema, s.attributes) for s in self.roles.values()}
        if moto_patches.has_tables(self.others.account, self.others.region):
            found.update(self.others.shapes())
        return found

    def items(self, table: str) -> list[Item]:
        role = self.by_name.get(table)
        if role == "runs":
            return [run_item(run).serialize() for run in self.store.all_runs()]
        if role == "jobs":
            return self._job_items()
        if role == "cache":
            return [_cache_item(entry) for entry in self.cache.entries.copy().values()]
        return self.others.items(table)

    def _job_items(self) -> list[Item]:
        from miniwdl_serverless.adapters.dynamodb_items import JobItem

        items = [job_item(job).serialize() for job in self.store.all_jobs()]
        expires = int(time.time()) + FINISHED_RUN_TTL_SECONDS  # a stub in memory has none
        for (run_id, job_id), (waiters, version) in self.store.all_stubs().items():
            stub = JobItem(run_id, job_id, waiters=waiters, waiters_version=version)
            stub.expires_at = expires
            items.append(stub.serialize())
        for (run_id, bucket_id), bucket in self.store.all_buckets().items():
            tally = JobItem(run_id, bucket_id, members=set(bucket.members) or None)
            for name in BUCKET_COUNTERS:
                setattr(tally, name, bucket.counts[name] or None)
            tally.expires_at = expires
            items.append(tally.serialize())
        return items

    def put_items(self, table: str, items: list[Item]) -> None:
        from miniwdl_serverless.adapters.dynamodb_items import (
            CacheItem,
            JobItem,
            RunItem,
            cache_entry,
            run_record,
        )

        role = self.by_name.get(table)
        if role == "runs":
            for item in items:
                self.store.restore_run(run_record(RunItem.from_raw_data(item)))
        elif role == "jobs":
            for item in items:
                values = JobItem.from_raw_data(item).attribute_values
                if values.get("status") is not None:  # a stub is carried forward, not loaded
                    self.store.restore_job(_job(values))
                elif values.get("members"):  # a gather's bucket
                    self.store.restore_bucket(values["run_id"], values["job_id"], _bucket(values))
        elif role == "cache":
            for item in items:
                self.cache.put_entry(cache_entry(CacheItem.from_raw_data(item)))
        else:
            self.others.put_items(table, items)

    def create(self, table: str, collection: Collection) -> None:
        self.others.create(table, collection)


def run_item(run: Run) -> RunItem:
    """The runs table's item for a run, as the DynamoDB adapter writes it."""
    from miniwdl_serverless.adapters.dynamodb_items import RunItem

    return RunItem(**_present(run.as_dict()))


def job_item(job: Job) -> JobItem:
    """The jobs table's item for a job, as the DynamoDB adapter writes it."""
    from miniwdl_serverless.adapters.dynamodb_items import JobItem

    return JobItem(**_present(_job_values(job)))


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _job_values(job: Job) -> dict[str, Any]:
    values = {name: getattr(job, name) for name in JOB_FIELDS}
    if values.get("awaiting") is not None:
        values["awaiting"] = set(values["awaiting"]) or None  # a string set in DynamoDB
    return values


def _job(values: dict[str, Any]) -> Job:
    job = Job(**{k: v for k, v in values.items() if k in JOB_FIELDS and v is not None})
    if job.awaiting is not None:
        job.awaiting = sorted(job.awaiting)
    return job


def _bucket(values: dict[str, Any]) -> Bucket:
    counts = Counter({name: int(values.get(name) or 0) for name in BUCKET_COUNTERS})
    return Bucket({int(i) for i in values["members"]}, counts)


def _cache_item(entry: CacheEntry) -> Item:
    from miniwdl_serverless.adapters.dynamodb_items import CacheItem

    item = CacheItem(
        entry.key,
        status=entry.status,
        claimant=entry.claimant,
        lease_until=entry.lease_until,
        waiters=set(entry.waiters) or None,
        data=entry.data,
    )
    return item.serialize()  # type: ignore[no-any-return]
