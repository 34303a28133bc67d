"""The RunStore port on DynamoDB (pynamodb): a runs table and a jobs table with one partition
per run. Every ConditionExpression, transaction and pynamodb/botocore exception stays here.

What each conditional write guards:
- completion: the job is still claimed/running (at the expected attempt) and its waiter list
  is the version read, so a repeated event cannot decrement twice and no waiter is missed;
  the dependents' decrements commit in the same transaction (``completing-N`` marks progress
  when there are more than one transaction holds);
- a shard's tally: its index added to its bucket's set (idempotent, no transaction), and a
  full bucket counted into the gather's ``pending`` once (``tallied`` does not hold it), so
  no item that concurrent completions write is in a transaction;
- claim: nothing pending and still waiting (or already this claimant's, so a re-delivered
  event resumes its own work);
- mark running: from the claim, from the previous attempt, or once the submitter's lease ran
  out without a Batch job id; a lease is renewed only by its holder (``lease_until`` as read);
- the Batch job id: once per attempt;
- giving back an outside dependency's count: once per dependency (``awaiting`` holds it).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from miniwdl_serverless.adapters.dynamodb_items import (
    JobItem,
    RunItem,
    bound,
    job_record,
    run_record,
)
from miniwdl_serverless.controller.ports import Conflict, LeaseTake, MissingJob, Started
from miniwdl_serverless.core.records import (
    CLAIMED,
    DONE,
    FAILED,
    JOB_FIELDS,
    READINESS_FIELDS,
    RUN_ENDED,
    RUN_FIELDS,
    RUNNING,
    WAITING,
    Job,
    Run,
    completing_step,
)
from miniwdl_serverless.core.store_rules import (
    BUCKET_COUNTERS,
    TALLY_PREFIX,
    TRANSACTION_LIMIT,
    bucket_counts,
    chunks,
    ended_fields,
    tally_item_id,
)

COMPLETION_ATTEMPTS = 20


class DynamoStore:
    """The RunStore port on two DynamoDB tables (names from template.yaml's outputs)."""

    def __init__(self, runs_table: str, jobs_table: str, host: str | None = None):
        self.runs: Any = bound(RunItem, runs_table, host)
        self.jobs: Any = bound(JobItem, jobs_table, host)

    @classmethod
    def from_environment(cls) -> DynamoStore:
        """As the Lambdas are configured (template.yaml sets RUNS_TABLE and JOBS_TABLE)."""
        return cls(os.environ["RUNS_TABLE"], os.environ["JOBS_TABLE"])

    # -- runs --
    def create_run(self, run: Run) -> bool:
        item = self._run_item(run)
        try:
            item.save(condition=self.runs.run_id.does_not_exist())
            return True
        except PutError as exn:
            if condition_failed(exn):
                return False
            raise

    def put_run(self, run: Run) -> None:
        self._run_item(run).save()

    def get_run(self, run_id: str) -> Run | None:
        try:
            item = self.runs.get(run_id, consistent_read=True)
        except self.runs.DoesNotExist:
            return None
        return run_record(item)

    def set_run_status(
        self, run_id: str, status: str, expected: Iterable[str], **fields: Any
    ) -> bool:
        actions = [self.runs.status.set(status)] + _assignments(self.runs, fields, RUN_FIELDS)
        if status in RUN_ENDED:
            ended = ended_fields(time.time())
            actions += [getattr(self.runs, name).set(value) for name, value in ended.items()]
        condition = self.runs.status.is_in(*expected)
        return self._update(self.runs(run_id), actions, condition) is not None

    def record_upload(self, run_id: str, folder: str) -> None:
        actions = [self.runs.uploaded_to.set(folder)]
        self._update(self.runs(run_id), actions, self.runs.run_id.exists())

    def mark_answered(self, run_id: str) -> None:
        actions = [self.runs.answer_due.remove()]
        self._update(self.runs(run_id), actions, self.runs.run_id.exists())

    def count(self, run_id: str, **deltas: int) -> None:
        _assignments(self.runs, deltas, RUN_FIELDS)  # checks the names
        actions = [getattr(self.runs, k).add(v) for k, v in deltas.items() if v]
        if actions:
            self.runs(run_id).update(actions=actions)

    # -- jobs --
    def put_new_jobs(self, jobs: list[Job], *, expires_at: int) -> set[str]:
        """Written as updates, not puts, so that waiters registered on a stub survive."""
        created: set[str] = set()
        for chunk in chunks(jobs, TRANSACTION_LIMIT):
            try:
                with TransactWrite(connection=self._connection()) as transaction:
                    for job in chunk:
                        transaction.update(
                            self.jobs(job.run_id, job.job_id),
                            actions=self._creation(job, expires_at),
                            condition=self.jobs.status.does_not_exist(),
                        )
                created |= {job.job_id for job in chunk}
            except TransactWriteError:
                for job in chunk:  # some exist already: a resumed expansion
                    item = self.jobs(job.run_id, job.job_id)
                    condition = self.jobs.status.does_not_exist()
                    if self._update(item, self._creation(job, expires_at), condition) is not None:
                        created.add(job.job_id)
        return created

    def _creation(self, job: Job, expires_at: int) -> list[Action]:
        keys = ("run_id", "job_id", "waiters", "waiters_version", "expires_at", "awaiting")
        values = {k: v for k, v in job.as_dict().items() if k not in keys and v is not None}
        if job.awaiting:  # a string set (DynamoDB has no empty sets)
            values["awaiting"] = set(job.awaiting)
        actions = [getattr(self.jobs, name).set(value) for name, value in values.items()]
        return [*actions, self.jobs.expires_at.set(expires_at)]

    def register_waiter(self, run_id: str, job_id: str, waiter: str, *, expires_at: int) -> bool:
        waiters = self.jobs.waiters
        actions = [
            waiters.set((waiters | []).append([waiter])),
            self.jobs.waiters_version.add(1),
            self.jobs.expires_at.set(self.jobs.expires_at | expires_at),  # a new stub's
        ]
        is_open = self.jobs.status.does_not_exist() | self.jobs.status.is_in(
            WAITING, CLAIMED, RUNNING
        )
        condition = is_open & ~waiters.contains(waiter)
        if self._update(self.jobs(run_id, job_id), actions, condition) is not None:
            return True
        try:
            current = self.jobs.get(run_id, job_id, consistent_read=True)
        except self.jobs.DoesNotExist:
            return False
        return waiter in (current.waiters or [])

    def get_job(self, run_id: str, job_id: str) -> Job | None:
        try:
            item = self.jobs.get(run_id, job_id, consistent_read=True)
        except self.jobs.DoesNotExist:
            return None
        return self._job(item)

    def get_run_and_job(self, run_id: str, job_id: str) -> tuple[Run | None, Job | None]:
        """One BatchGetItem over both tables, consistent; a key DynamoDB left unprocessed
        (throttling, capacity) is read on its own instead."""
        runs, jobs = self.runs.Meta.table_name, self.jobs.Meta.table_name
        request = {
            runs: {"Keys": [{"run_id": {"S": run_id}}], "ConsistentRead": True},
            jobs: {
                "Keys": [{"run_id": {"S": run_id}, "job_id": {"S": job_id}}],
                "ConsistentRead": True,
            },
        }
        answer = self._connection().client.batch_get_item(RequestItems=request)
        found = answer.get("Responses", {})
        left = answer.get("UnprocessedKeys") or {}
        if runs in left:
            run = self.get_run(run_id)
        else:
            run = next((run_record(self.runs.from_raw_data(i)) for i in found.get(runs, [])), None)
        if jobs in left:
            return run, self.get_job(run_id, job_id)
        items = [self._job(self.jobs.from_raw_data(i)) for i in found.get(jobs, [])]
        return run, next((j for j in items if j is not None), None)

    def get_jobs(
        self, run_id: str, job_ids: Iterable[str], readiness_only: bool = False
    ) -> dict[str, Job]:
        keys = [(run_id, job_id) for job_id in sorted(set(job_ids))]
        attributes = list(READINESS_FIELDS) if readiness_only else None
        found: dict[str, Job] = {}
        for chunk in chunks(keys, 100):
            items = self.jobs.batch_get(chunk, consistent_read=True, attributes_to_get=attributes)
            for item in items:
                job = self._job(item)
                if job is not None:
                    found[job.job_id] = job
        return found

    def query_jobs(
        self, run_id: str, statuses: Iterable[str] | None = None, *, prefix: str = ""
    ) -> Iterator[Job]:
        condition = self.jobs.status.is_in(*statuses) if statuses else None
        in_range = self.jobs.job_id.startswith(prefix) if prefix else None
        items = self.jobs.query(run_id, in_range, filter_condition=condition, consistent_read=True)
        for item in items:
            job = self._job(item)
            if job is not None:
                yield job

    def claim(self, run_id: str, job_id: str, claimant: str) -> Job | None:
        jobs = self.jobs
        mine = (jobs.status == CLAIMED) & (jobs.claimed_by == claimant)
        condition = (jobs.pending <= 0) & ((jobs.status == WAITING) | mine)
        actions = [jobs.status.set(CLAIMED), jobs.claimed_by.set(claimant)]
        return self._job_update(run_id, job_id, actions, condition)

    def mark_running(
        self, run_id: str, job_id: str, attempt: int, resubmit: bool = False, **fields: Any
    ) -> Job | None:
        jobs = self.jobs
        actions = [jobs.status.set(RUNNING), jobs.attempt.set(attempt)]
        actions += _assignments(jobs, fields, JOB_FIELDS)
        condition = jobs.status == CLAIMED
        if attempt > 0:
            condition = condition | ((jobs.status == RUNNING) & (jobs.attempt == attempt - 1))
        if resubmit:
            lease_over = jobs.lease_until.does_not_exist() | (jobs.lease_until < time.time())
            same_attempt = (jobs.status == RUNNING) & (jobs.attempt == attempt)
            condition = condition | (same_attempt & jobs.batch_job_id.does_not_exist() & lease_over)
        return self._job_update(run_id, job_id, actions, condition)

    def renew_lease(  # noqa: PLR0913 - the attempt, the lease held, the new one and its holder
        self,
        run_id: str,
        job_id: str,
        attempt: int,
        held_until: float,
        until: float,
        holder: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        take = LeaseTake(job_id, attempt, held_until, until, holder, fields)
        return self._job_update(run_id, job_id, *self._lease_take(take)) is not None

    def take_leases(self, run_id: str, takes: list[LeaseTake]) -> set[str]:
        updates = [(t.job_id, *self._lease_take(t)) for t in takes]
        return self._transact(run_id, updates, [(t.job_id, t.until, t.holder) for t in takes])

    def _lease_take(self, take: LeaseTake) -> tuple[list[Action], Condition]:
        jobs = self.jobs
        condition = (
            (jobs.status == RUNNING)
            & (jobs.attempt == take.attempt)
            & jobs.batch_job_id.does_not_exist()
            & (jobs.lease_until == take.held_until)
        )
        actions = [jobs.lease_until.set(take.until)]
        actions += _assignments(jobs, take.fields or {}, JOB_FIELDS)
        if take.holder is not None:
            actions.append(jobs.lease_holder.set(take.holder))
        return actions, condition

    def _transact(
        self, run_id: str, updates: list[tuple[str, list[Action], Condition]], what: list[Any]
    ) -> set[str]:
        """Conditional updates of distinct jobs, a transaction per 100 (one request); the ids
        updated. A transaction some condition cancelled is done again item by item (each
        condition then decides its own item, as the single writes would). ``what`` tells the
        updates apart: its digest is the transaction's token, so that a retry of one whose
        answer was lost is the same transaction, not a second one its own writes refuse."""
        done: set[str] = set()
        if len({job_id for job_id, _, _ in updates}) < len(updates):  # not one transaction
            chunked = [[update] for update in updates]
        else:
            chunked = list(chunks(updates, TRANSACTION_LIMIT))
        for number, chunk in enumerate(chunked):
            if len(chunk) > 1:
                start = number * TRANSACTION_LIMIT
                named = repr((run_id, what[start : start + len(chunk)]))
                token = hashlib.sha256(named.encode()).hexdigest()[:36]
                try:
                    with TransactWrite(
                        connection=self._connection(), client_request_token=token
                    ) as transaction:
                        for job_id, actions, condition in chunk:
                            item = self.jobs(run_id, job_id)
                            transaction.update(item, actions=actions, condition=condition)
                    done |= {job_id for job_id, _, _ in chunk}
                    continue
                except TransactWriteError:
                    pass  # some condition failed (or a conflict): each on its own
            for job_id, actions, condition in chunk:
                if self._job_update(run_id, job_id, actions, condition) is not None:
                    done.add(job_id)
        return done

    def stop_awaiting(self, run_id: str, job_id: str, dependency: str) -> Job | None:
        jobs = self.jobs
        actions = [jobs.awaiting.delete({dependency}), jobs.pending.add(-1)]
        return self._job_update(run_id, job_id, actions, jobs.awaiting.contains(dependency))

    def record_batch_job(self, run_id: str, job_id: str, attempt: int, batch_job_id: str) -> bool:
        return self._job_update(run_id, job_id, *self._record(attempt, batch_job_id)) is not None

    def record_batch_jobs(self, run_id: str, records: list[tuple[str, int, str]]) -> set[str]:
        return self._transact(run_id, [(j, *self._record(a, b)) for j, a, b in records], records)

    def _record(self, attempt: int, batch_job_id: str) -> tuple[list[Action], Condition]:
        jobs = self.jobs
        condition = (jobs.attempt == attempt) & jobs.batch_job_id.does_not_exist()
        return [jobs.batch_job_id.set(batch_job_id)], condition

    def note_started(self, run_id: str, job_id: str, started: Started) -> Job | None:
        jobs = self.jobs
        condition = (
            (jobs.status == RUNNING)
            & (jobs.attempt == started.attempt)
            & (jobs.batch_job_name == started.batch_job_name)
            & (jobs.batch_job_id.does_not_exist() | (jobs.batch_job_id == started.batch_job_id))
            & jobs.started_at.does_not_exist()
        )
        actions = [jobs.started_at.set(started.started_at), jobs.log_stream.set(started.log_stream)]
        return self._job_update(run_id, job_id, actions, condition)

    def update_job(self, run_id: str, job_id: str, **fields: Any) -> Job:
        actions = _assignments(self.jobs, fields, JOB_FIELDS)
        job = self._job_update(run_id, job_id, actions, self._exists())
        if job is None:
            raise MissingJob(f"no job {job_id} in run {run_id}")
        return job

    def complete(
        self, job: Job, outputs: Any, expected_attempt: int | None = None
    ) -> list[str] | None:
        """A waiter registering meanwhile changes ``waiters_version``: the transaction is then
        retried with the new list, so no waiter is missed."""
        for _ in range(COMPLETION_ATTEMPTS):
            outcome = self._complete_once(job, outputs, expected_attempt)
            if outcome is not True:
                return None if outcome is False else outcome
            fresh = self.get_job(job.run_id, job.job_id)
            if fresh is None:
                return None
            job = fresh
        raise Conflict(f"could not complete {job.job_id}: waiters kept changing")

    def _complete_once(
        self, job: Job, outputs: Any, expected_attempt: int | None
    ) -> list[str] | bool:
        """The targets decremented; False if already complete; True to retry (waiters changed)."""
        if job.status == DONE:
            return False
        jobs = self.jobs
        condition = jobs.status.is_in(CLAIMED, RUNNING)
        if expected_attempt is not None:
            condition = condition & (jobs.attempt == expected_attempt)
        version = job.waiters_version
        same_waiters = (
            jobs.waiters_version.does_not_exist()
            if version is None
            else jobs.waiters_version == version
        )
        condition = condition & same_waiters
        targets = job.targets()
        batches = list(chunks(targets, TRANSACTION_LIMIT - 1)) or [[]]
        done: list[Action] = [
            jobs.status.set(DONE),
            jobs.outputs.set(outputs),
            jobs.finished_at.set(time.time()),
        ]
        item = jobs(job.run_id, job.job_id)
        for index in range(completing_step(job.status), len(batches)):
            guard = condition if index == 0 else jobs.status == f"completing-{index}"
            progress = [jobs.status.set(f"completing-{index + 1}"), jobs.outputs.set(outputs)]
            actions = done if index == len(batches) - 1 else progress
            if self._commit(item, actions, guard, batches[index]):
                continue
            if index > 0:
                return False
            return self._retry_with_fresh(job, expected_attempt, version)
        return targets + job.group_tokens()

    def _commit(
        self, item: Any, actions: list[Action], guard: Condition, dependents: list[str]
    ) -> bool:
        """One completion step: the job's write and its dependents' decrements, in one
        transaction; with no dependent (a shard whose gather is tallied), one conditional
        update of the job alone. False if the job's guard failed."""
        if not dependents:
            return self._update(item, actions, guard) is not None
        jobs = self.jobs
        try:
            with TransactWrite(connection=self._connection()) as transaction:
                transaction.update(item, actions=actions, condition=guard)
                for dependent in dependents:
                    transaction.update(
                        jobs(item.run_id, dependent),
                        actions=[jobs.pending.add(-1)],
                        condition=jobs.job_id.exists(),
                    )
        except TransactWriteError as exn:
            codes = _cancellation_codes(exn)
            if not codes or codes[0] != "ConditionalCheckFailed":
                if "ConditionalCheckFailed" in codes:
                    raise MissingJob(f"{item.job_id}: a dependent does not exist") from exn
                raise  # a conflict or throttling: the Retrying wrapper's to judge
            return False
        return True

    def tally_shard(self, job: Job, counts: Mapping[str, int]) -> bool:
        tally = _tally(job)
        jobs, index = self.jobs, int(tally["index"])
        actions = [jobs.members.add({index})]
        actions += [getattr(jobs, name).add(n) for name, n in bucket_counts(counts).items()]
        if job.expires_at is not None:  # the bucket expires with the jobs (if_not_exists)
            actions.append(jobs.expires_at.set(jobs.expires_at | job.expires_at))
        bucket = jobs(job.run_id, tally_item_id(tally["gather"], int(tally["bucket"])))
        condition = jobs.members.does_not_exist() | ~jobs.members.contains(index)
        if self._update(bucket, actions, condition) is None:  # counted before: as it is now
            bucket.refresh(consistent_read=True)
        return len(bucket.members or ()) >= int(tally["size"])

    def tallied(self, run_id: str) -> dict[str, int]:
        totals = dict.fromkeys(BUCKET_COUNTERS, 0)
        attributes = list(BUCKET_COUNTERS)
        in_range = self.jobs.job_id.startswith(TALLY_PREFIX)
        for item in self.jobs.query(
            run_id, in_range, consistent_read=True, attributes_to_get=attributes
        ):
            for name in BUCKET_COUNTERS:
                totals[name] += int(getattr(item, name) or 0)
        return totals

    def tally_bucket(self, job: Job) -> Job | None:
        tally = _tally(job)
        jobs, bucket = self.jobs, int(tally["bucket"])
        actions = [jobs.tallied.add({bucket}), jobs.pending.add(-int(tally["size"]))]
        condition = jobs.status.exists() & ~jobs.tallied.contains(bucket)
        counted = self._job_update(job.run_id, tally["gather"], actions, condition)
        if counted is not None:
            return counted
        found = self.get_jobs(job.run_id, [tally["gather"]], readiness_only=True)
        return found.get(tally["gather"])  # counted before (or no such gather)

    def _retry_with_fresh(self, job: Job, expected_attempt: int | None, version: Any) -> bool:
        """After the first step's guard failed: True to try again with the job as it is now —
        its waiters changed, or a completion stopped between steps (a crashed invocation, or
        this one's own first try, retried after a lost response) and is to be continued."""
        fresh = self.get_job(job.run_id, job.job_id)
        if fresh is None:
            return False
        if completing_step(fresh.status) > 0:
            return True
        still_open = fresh.status in (CLAIMED, RUNNING) and (
            expected_attempt is None or fresh.attempt == expected_attempt
        )
        return still_open and fresh.waiters_version != version

    def fail_job(self, run_id: str, job_id: str, error: dict[str, Any]) -> bool:
        jobs = self.jobs
        actions = [
            jobs.status.set(FAILED),
            jobs.error.set(error),
            jobs.finished_at.set(time.time()),
        ]
        condition = jobs.status.is_in(CLAIMED, RUNNING)
        return self._job_update(run_id, job_id, actions, condition) is not None

    # -- helpers --
    def _run_item(self, run: Run) -> Model:
        values = {k: v for k, v in run.as_dict().items() if v is not None}
        values.setdefault("created_at", time.time())
        return self.runs(**values)  # type: ignore[no-any-return]

    def _job(self, item: Model) -> Job | None:
        return job_record(item)

    def _exists(self) -> Condition:
        return self.jobs.status.exists()  # type: ignore[no-any-return]

    def _job_update(
        self, run_id: str, job_id: str, actions: list[Action], condition: Condition
    ) -> Job | None:
        item = self._update(self.jobs(run_id, job_id), actions, condition)
        return self._job(item) if item is not None else None

    def _update(self, item: Model, actions: list[Action], condition: Condition) -> Model | None:
        """The item after the update (pynamodb reads back ALL_NEW), None if the condition failed."""
        try:
            item.update(actions=actions, condition=condition)
            return item
        except UpdateError as exn:
            if condition_failed(exn):
                return None
            raise

    def _connection(self) -> Connection:
        """The jobs model's own low-level connection, so transactions reuse its client."""
        return self.jobs._get_connection().connection  # type: ignore[no-any-return]


def item_size(item: Model) -> int:
    """Approximate DynamoDB item size in bytes (attribute names + serialized values)."""
    size = 0
    for name, value in item.serialize().items():
        size += len(name.encode()) + len(json.dumps(value).encode())
    return size


def _assignments(model: Any, fields: dict[str, Any], known: frozenset[str]) -> list[Action]:
    """SET for values, REMOVE for None; unknown names are a programming error."""
    unknown = set(fields) - known
    if unknown:
        raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return [
        getattr(model, k).remove() if v is None else getattr(model, k).set(v)
        for k, v in fields.items()
    ]


def condition_failed(exn: Exception) -> bool:
    cause = getattr(exn, "cause_response_code", None) or ""
    return "ConditionalCheckFailed" in str(cause) or "ConditionalCheckFailed" in str(exn)


def _tally(job: Job) -> dict[str, Any]:
    if not job.tally:
        raise ValueError(f"{job.job_id} is no tallied shard")
    return job.tally


def _cancellation_codes(exn: TransactWriteError) -> list[str | None]:
    """Why each item of a cancelled transaction failed (None: that item was fine)."""
    reasons = getattr(exn, "cancellation_reasons", None) or []
    return [reason.code if reason is not None else None for reason in reasons]
