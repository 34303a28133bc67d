"""The embedded EventBridge: the events AWS services put on the default bus ("Batch Job State
Change", "Step Functions Execution Status Change", S3 "Object Created"), the rules that match
them to functions, and their asynchronous delivery."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from miniwdl_serverless.local.batch_executor import job_tags
from miniwdl_serverless.local.project import matches
from miniwdl_serverless.local.resources import ACCOUNT, REGION

TERMINAL = ("SUCCEEDED", "FAILED")


def _envelope(
    detail_type: str, source: str, resource: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """An EventBridge event as delivered to a target (plain JSON)."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [resource],
        "detail": detail,
    }
    return json.loads(json.dumps(event))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Redelivery:
    """How a stream delivers a batch again: when it is done with it (the handler's answer),
    after which delays (then the last, again), and how many tries at most."""

    done: Callable[[Any], bool]
    delays: tuple[float, ...]
    tries: int

    def delay(self, attempt: int) -> float:
        return self.delays[min(attempt, len(self.delays) - 1)]


class EventBus:
    """EventBridge's default bus: ``put_event`` delivers an event to every target (a function
    name, run by ``call(name, event)``) whose rule matches, in a pool of ``workers`` threads."""

    def __init__(self, workers: int, call: Callable[[str, dict[str, Any]], Any]):
        self.call = call
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eventbridge")
        self.patterns: dict[str, list[dict[str, Any]]] = {}  # target → its rules' patterns
        self.refs: dict[str, str] = {}  # template logical id → local physical name (for patterns)
        self.sent: list[dict[str, Any]] = []  # every event put on the bus
        self.delivered: list[dict[str, Any]] = []  # those a handler processed without error
        self.closing = False
        self._pending = 0
        self.last_delivered = time.monotonic()
        self._lock = threading.Lock()
        self._sequencer = 0
        self._emitted: set[str] = set()  # executions whose end was announced on the bus
        self._watcher: threading.Thread | None = None
        # events lost between the service and EventBridge's targets (tests set a predicate)
        self.losing: Callable[[dict[str, Any]], bool] | None = None
        self.lost: list[dict[str, Any]] = []

    # -- the events AWS sends --
    def batch_event(self, job: Any) -> dict[str, Any]:
        """The "Batch Job State Change" event as EventBridge delivers it (detail = DescribeJobs)."""
        detail = job.describe()
        detail["jobQueue"] = job.job_queue.arn
        if job.exit_code is not None and job.status in TERMINAL:
            detail.setdefault("container", {})["exitCode"] = job.exit_code
        if job.job_stopped_reason:
            detail["statusReason"] = job.job_stopped_reason
        parent = getattr(job, "array_parent", None)
        if parent is not None:  # an array child: its index, and (assumed) the parent's tags
            detail["tags"] = job_tags(job)
            detail["arrayProperties"] = {"index": job.array_properties["index"]}
        return _envelope("Batch Job State Change", "aws.batch", job.arn, detail)

    def execution_event(self, description: dict[str, Any]) -> dict[str, Any]:
        """The "Step Functions Execution Status Change" event EventBridge delivers at the end."""

        def millis(value: Any) -> int | None:
            return int(value.timestamp() * 1000) if isinstance(value, datetime) else None

        detail = {
            "executionArn": description["executionArn"],
            "stateMachineArn": description["stateMachineArn"],
            "name": description["name"],
            "status": description["status"],
            "startDate": millis(description.get("startDate")),
            "stopDate": millis(description.get("stopDate")),
            "input": description.get("input"),
            "output": description.get("output"),
            "error": description.get("error"),
            "cause": description.get("cause"),
        }
        return _envelope(
            "Step Functions Execution Status Change",
            "aws.states",
            description["executionArn"],
            detail,
        )

    def s3_object_created_event(self, event_name: str, bucket: str, key: Any) -> dict[str, Any]:
        """The "Object Created" event S3 sends to EventBridge (key as stored, not URL-encoded)."""
        reasons = {
            "Put": "PutObject",
            "Post": "POST Object",
            "Copy": "CopyObject",
            "CompleteMultipartUpload": "CompleteMultipartUpload",
        }
        with self._lock:
            self._sequencer += 1
            sequencer = f"{time.time_ns() // 1000:014X}{self._sequencer:04X}"
        obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.strip('"')}
        if key.version_id and key.version_id != "null":  # unversioned buckets send no version-id
            obj["version-id"] = key.version_id
        obj["sequencer"] = sequencer
        detail = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": obj,
            "request-id": uuid.uuid4().hex[:16].upper(),
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": reasons.get(event_name.rsplit(":", 1)[-1], "PutObject"),
        }
        return _envelope("Object Created", "aws.s3", f"arn:aws:s3:::{bucket}", detail)

    def emit_batch_event(self, job: Any) -> None:
        self.put_event(self.batch_event(job))

    def announce_end(self, description: dict[str, Any]) -> None:
        """The execution's "Status Change" event, once per execution."""
        with self._lock:
            if description["executionArn"] in self._emitted:
                return
            self._emitted.add(description["executionArn"])
        self.put_event(self.execution_event(description))

    # -- rules and delivery --
    def subscribe(self, target: str, patterns: list[dict[str, Any]]) -> None:
        """``target``'s rules, with the template's references resolved (see ``refs``)."""
        self.patterns[target] = [self._local_pattern(p) for p in patterns]

    def _local_pattern(self, pattern: dict[str, Any]) -> dict[str, Any]:
        # one local queue
        detail = {k: v for k, v in pattern.get("detail", {}).items() if k != "jobQueue"}
        return self._resolve_refs({**pattern, "detail": detail})

    def _resolve_refs(self, value: Any) -> Any:
        """{Ref: Bucket} → the local bucket's name (other references stay, and match anything)."""
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in self.refs:
                return self.refs[value["Ref"]]
            return {k: self._resolve_refs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve_refs(v) for v in value]
        return value

    def put_event(self, event: dict[str, Any]) -> None:
        """Deliver to every function whose rule matches, asynchronously, like EventBridge."""
        if self.closing:
            return
        if self.losing is not None and self.losing(event):
            self.lost.append(event)
            return
        self.sent.append(event)
        for name, patterns in self.patterns.items():
            if any(matches(p, event) for p in patterns):
                with self._lock:
                    self._pending += 1
                self.pool.submit(self._deliver, name, event)

    def _deliver(self, name: str, event: dict[str, Any]) -> None:
        try:
            self.call(name, event)
            self.delivered.append(event)
        except Exception:
            logging.getLogger(__name__).exception("event handler %s failed", name)
        finally:
            with self._lock:
                self._pending -= 1
                self.last_delivered = time.monotonic()

    def deliver_until_done(self, name: str, event: dict[str, Any], redelivery: Redelivery) -> None:
        """A stream's delivery to ``name``: asynchronous, and again as ``redelivery`` says
        while it raises or reports its items failed."""
        with self._lock:
            self._pending += 1
        self.pool.submit(self._deliver_until_done, name, event, redelivery)

    def _deliver_until_done(self, name: str, event: dict[str, Any], redelivery: Redelivery) -> None:
        try:
            for attempt in range(redelivery.tries):
                if self.closing and attempt:
                    return
                try:
                    if redelivery.done(self.call(name, event)):
                        return
                except Exception:
                    logging.getLogger(__name__).exception("stream handler %s failed", name)
                time.sleep(redelivery.delay(attempt))
        finally:
            with self._lock:
                self._pending -= 1
                self.last_delivered = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last delivery ended, with none pending (0 while one is)."""
        with self._lock:
            return 0.0 if self._pending else time.monotonic() - self.last_delivered

    def pending(self) -> int:
        """Events put on the bus whose delivery has not finished."""
        with self._lock:
            return self._pending

    def drain(self, timeout: float = 30.0, idle: Callable[[], bool] = lambda: True) -> None:
        """Let in-flight events finish, until none is pending and ``idle()`` (nothing more
        will come), or ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0 and idle():
                return
            time.sleep(0.02)

    # -- executions that end on their own --
    def watch_executions(self, sfn: Any, state_machine_arn: str) -> None:
        """EventBridge's "Execution Status Change" for executions of ``state_machine_arn`` that
        end from now on (stopped, timed out, failed, or started over HTTP): their runs reach the
        cancel function, as on AWS. Until ``close``."""
        self._watcher = threading.Thread(
            target=self._watch,
            args=(sfn, state_machine_arn),
            name="execution-events",
            daemon=True,
        )
        self._watcher.start()

    def _watch(self, sfn: Any, state_machine_arn: str) -> None:
        """Watches the running set, so it costs little per tick."""
        running: set[str] = set()
        while not self.closing:
            try:
                now = _running_executions(sfn, state_machine_arn)
                for arn in running - now:
                    if arn not in self._emitted:
                        self.announce_end(sfn.describe_execution(executionArn=arn))
                running = now
            except Exception:  # noqa: S110 (the bus keeps going; the next tick retries)
                if self.closing:
                    return
            time.sleep(0.3)

    def close(self) -> None:
        """No more events: ``put_event`` drops them and the watcher stops."""
        self.closing = True

    def join_watcher(self, timeout: float = 5) -> None:
        if self._watcher is not None:
            self._watcher.join(timeout=timeout)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _running_executions(sfn: Any, state_machine_arn: str) -> set[str]:
    pages = sfn.get_paginator("list_executions").paginate(
        stateMachineArn=state_machine_arn, statusFilter="RUNNING"
    )
    return {e["executionArn"] for page in pages for e in page["executions"]}
