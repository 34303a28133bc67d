"""The chaos scenarios: a workflow, what its Batch jobs do, and the faults; each faulted run
is compared with a clean run of the same workflow and behaviour."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.faults import Clock, Faults, frozen_time
from tests.chaos.world import (
    EXITED,
    FALLBACK,
    QUEUE,
    Behaviour,
    Outcome,
    Traffic,
    World,
    runs_script,
)

HERE = Path(__file__).parent
DEMO = HERE.parent.parent / "examples" / "viral_pipeline"
SPOT_RECLAIMED = "Host EC2 (instance i-0abc123def4567890) terminated."
CANNOT_PULL = (
    "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to "
    "resolve ref quay.io/biocontainers/lofreq:2.1.5--no-such-tag: not found"
)
START_TIME = 1_796_000_000.0  # the world's clock starts here (2026-12)
STEP_LIMIT = 20_000  # deliveries and Batch jobs of one run: more is a stuck run


def retries_behaviour(job_id: str, attempt: int, queue: str) -> Outcome | None:
    """call-flaky fails its first attempt (maxRetries takes it); call-spot's first attempt is
    reclaimed on the spot queue (preemptible, then the fallback queue)."""
    if job_id == "call-flaky" and attempt == 0:
        return ("FAILED", 1, EXITED)
    if job_id == "call-spot" and queue == QUEUE:
        return ("FAILED", None, SPOT_RECLAIMED)
    return None


def cannot_pull_behaviour(job_id: str, attempt: int, queue: str) -> Outcome | None:
    if job_id == "call-square-2":
        return ("FAILED", None, CANNOT_PULL)
    return None


BEHAVIOURS: dict[str, Behaviour] = {
    "script": runs_script,
    "retries": retries_behaviour,
    "cannot_pull": cannot_pull_behaviour,
}


@dataclass(frozen=True)
class Workflow:
    name: str
    main: str  # the main WDL, under the copied sources
    inputs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    behaviour: str = "script"
    demo: bool = False  # the sources (and inputs) are examples/viral_pipeline
    remote_objects: dict[str, bytes] = field(default_factory=dict)  # URI inputs' objects

    def execution_input(self, root: str) -> dict[str, Any]:
        sources = os.path.join(root, "wdl")
        inputs = {k: _rooted(v, sources) for k, v in self.inputs.items()}
        return {
            "workflow": os.path.join(sources, self.main),
            "inputs": inputs,
            "dir": os.path.join(root, "runs"),
            **self.options,
        }

    def copy_sources(self, root: str) -> None:
        shutil.copytree(DEMO if self.demo else HERE / "workflows", os.path.join(root, "wdl"))


def _rooted(value: Any, sources: str) -> Any:
    """Input paths of the demo are relative to its directory."""
    if isinstance(value, list):
        return [_rooted(v, sources) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        return os.path.join(sources, value[1:])
    return value


WORKFLOWS = {
    w.name: w
    for w in [
        Workflow("scatter_gather", "scatter_gather.wdl"),
        Workflow("sub_workflow", "sub_main.wdl"),
        Workflow(
            "conditional",
            "conditional.wdl",
            options={"s3upload": "s3://chaos-bucket/results/", "delete_after": "success"},
        ),
        Workflow("retries", "retries.wdl", behaviour="retries"),
        Workflow(
            "demo",
            "pipeline.wdl",
            inputs={
                "viral_pipeline.reference": "@ref.fasta",
                "viral_pipeline.sample_names": ["sampleA", "sampleB", "sampleC"],
                "viral_pipeline.sample_reads": [f"@reads/sample{s}.fastq" for s in "ABC"],
            },
            demo=True,
        ),
        Workflow("cannot_pull", "scatter_gather.wdl", behaviour="cannot_pull"),
        Workflow(
            "downloads",
            "downloads.wdl",
            inputs={
                "downloads.small": "s3://chaos/small.txt",
                "downloads.large": "s3://chaos/l.txt",
            },
            options={
                "config": {
                    "MINIWDL__DOWNLOAD_CACHE__DIR": "cache",
                    "MINIWDL__SERVERLESS__LAMBDA_DOWNLOAD_LIMIT": "100",
                }
            },
            remote_objects={"s3://chaos/small.txt": b"a\nb\n", "s3://chaos/l.txt": b"x\n" * 100},
        ),
        Workflow("wide_scatter", "scatter_gather.wdl", inputs={"scatter_gather.n": 200}),
    ]
}


RECONCILER_ROUNDS = 12  # an hour of 5-minute rounds: past every rule but a lost Batch job's


@dataclass(frozen=True)
class Scenario:
    name: str
    fault_class: str
    workflow: str
    crash_after: tuple[str, str, int] | None = None
    kill_at: int | None = None
    transient: float = 0.0
    max_copies: int = 1
    shuffle: bool = False
    delay: float = 0.0
    cancel_at: int | None = None  # stop the execution after this many deliveries
    concurrent: int = 0  # deliver the first completions from this many threads
    seed: int = 0
    latency: float = 5.0  # each port call moves the clock: submit leases get renewed
    lose: float = 0.0  # chance that a job's final event never arrives (the reconciler's)
    dead_letter: bool = False  # the first final event ends in the dead-letter queue


@dataclass
class Result:
    scenario: Scenario
    outcome: dict[str, Any]
    writes: list[tuple[str, str]]
    calls: int
    deliveries: int
    duplicates: int
    problems: list[str]
    stuck: bool = False
    changed: bool = False


def run_scenario(scenario: Scenario, base: str, reference: dict[str, Any] | None) -> Result:
    root = tempfile.mkdtemp(prefix="s-", dir=base)
    try:
        return _run(scenario, os.path.realpath(root), reference)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(scenario: Scenario, root: str, reference: dict[str, Any] | None) -> Result:
    workflow = WORKFLOWS[scenario.workflow]
    workflow.copy_sources(root)
    clock = Clock(START_TIME)
    faults = Faults(
        crash_after=scenario.crash_after,
        kill_at=scenario.kill_at,
        transient=scenario.transient,
        latency=scenario.latency,
        seed=scenario.seed,
    )
    traffic = Traffic(
        max_copies=scenario.max_copies,
        shuffle=scenario.shuffle,
        delay=scenario.delay,
        lose=scenario.lose,
        dead_letter=scenario.dead_letter,
        seed=scenario.seed,
    )
    world = World(root, faults, traffic, clock, BEHAVIOURS[workflow.behaviour])
    for uri, data in workflow.remote_objects.items():
        world.remotes.put(uri, data)
    with frozen_time(clock):
        world.start(workflow.execution_input(root))
        if scenario.concurrent:
            _concurrent_start(world, scenario.concurrent)
        steps = _play(world, scenario)
    return _judge(scenario, world, root, steps, reference)


def _concurrent_start(world: World, workers: int) -> None:
    """Every job Start submitted runs; all their events, each 1-3 times, at once."""
    for job in world.new_jobs():
        world.run_job(job)
    world.deliver_concurrently(workers)


def _play(world: World, scenario: Scenario) -> int:
    steps = 0
    while steps < STEP_LIMIT:
        if scenario.cancel_at is not None and world.deliveries >= scenario.cancel_at:
            if not world.aborted and world.result is None:
                world.stop_execution()
        if not world.step() and not _reconciled(world, scenario):
            break
        steps += 1
    return steps


def _reconciled(world: World, scenario: Scenario) -> bool:
    """The world fell quiet with the run open: in a scenario that loses events, the scheduled
    reconciler's rounds come (until one does something, for at most RECONCILER_ROUNDS).
    The other fault classes must recover without it."""
    if world.dead_letters.messages and world.reconciler_rounds < RECONCILER_ROUNDS:
        return world.reconcile()  # the schedule goes on after the run ended: the DLQ drains
    if not (scenario.lose or scenario.dead_letter) or world.result is not None or world.aborted:
        return False
    return any(world.reconcile() for _ in range(RECONCILER_ROUNDS))


# ---- judging ------------------------------------------------------------------------------


def _judge(
    scenario: Scenario, world: World, root: str, steps: int, reference: dict[str, Any] | None
) -> Result:
    outcome = observed_outcome(world, root)
    problems: list[str] = []
    stuck = (
        steps >= STEP_LIMIT or not world.run_ended() or (world.result is None and not world.aborted)
    )
    if stuck:
        problems.append(f"stuck: run {_status(world)}, finish {world.result is not None}")
    duplicates = duplicate_submissions(world)
    if duplicates:
        problems.append(f"{duplicates} attempt(s) ran twice")
    if world.left_open:
        problems.append(f"Batch jobs began after the run ended: {world.left_open}")
    problems += _behaviour_checks(scenario, world)
    problems += _injected(scenario, world)
    expected = expected_outcome(scenario, world, reference)
    changed = expected is not None and not stuck and outcome != expected
    if changed:
        problems.append(
            f"outcome changed:\n  got      {_short(outcome)}\n  expected {_short(expected)}"
        )
    return Result(
        scenario,
        outcome,
        list(world.faults.writes),
        world.faults.calls,
        world.deliveries,
        duplicates,
        problems,
        stuck=stuck,
        changed=changed,
    )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) < 600 else text[:600] + "..."


def _status(world: World) -> str:
    run = world.run()
    return run.status if run is not None else "missing"


def expected_outcome(
    scenario: Scenario, world: World, reference: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A stopped execution ends its run as RunStopped (unless the run had ended before);
    anything else ends as the clean run did."""
    if world.aborted and world.result is None:
        return {"status": "stopped", "error": "RunStopped"}
    return reference


def observed_outcome(world: World, root: str) -> dict[str, Any]:
    """What the run ended with, without its run-specific paths: Finish's answer (outputs and
    the digest of every output file, or the error's name and message), or how a stopped
    run's record ended."""
    if world.result is None:
        run = world.run()
        error = (run.error or {}).get("error") if run is not None else None
        return {"status": "stopped" if world.aborted else "none", "error": error}
    run = world.run()
    run_dir = run.run_dir if run is not None and run.run_dir else root
    result = json.loads(_normal(json.dumps(world.result), run_dir, root))
    if result.get("status") == "succeeded":
        digests = _file_digests(world.result.get("outputs"), world, run_dir, root)
        return {"status": "succeeded", "outputs": result.get("outputs"), "files": digests}
    cause = json.loads(result.get("cause") or "{}") if result.get("status") == "failed" else {}
    message = cause.get("message") if isinstance(cause, dict) else None
    return {"status": result.get("status"), "error": result.get("error"), "message": message}


def _normal(text: str, run_dir: str, root: str) -> str:
    """Run-specific paths: a retried Start may have left an empty run directory behind
    (its name was taken, so the run's is ``..._2``); the scenario's root."""
    return text.replace(run_dir, "<run>").replace(root, "<root>")


def _file_digests(value: Any, world: World, run_dir: str, root: str) -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(item: Any) -> None:
        if isinstance(item, str) and item.startswith("s3://") and item in world.uploads.files:
            found[item] = world.uploads.files[item]
        elif isinstance(item, str) and item.startswith(root) and os.path.isfile(item):
            with open(item, "rb") as file:
                found[_normal(item, run_dir, root)] = _sha(file.read())
        elif isinstance(item, list):
            for v in item:
                walk(v)
        elif isinstance(item, dict):
            for v in item.values():
                walk(v)

    walk(value)
    return found


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def duplicate_submissions(world: World) -> int:
    """Attempts (one deterministic Batch job name each) for which more than one Batch job
    ran: a duplicate terminated before it ran, or found and adopted, is fine."""
    names = Counter(job.submission.name for job in world.executed)
    return sum(n - 1 for n in names.values() if n > 1)


def _behaviour_checks(scenario: Scenario, world: World) -> list[str]:
    workflow = WORKFLOWS[scenario.workflow]
    if workflow.behaviour != "retries" or world.aborted:
        return []
    problems = []
    spot = [
        j for j in world.executed if j.submission.tags.get("miniwdl-serverless:job") == "call-spot"
    ]
    if not spot or spot[-1].submission.queue != FALLBACK:
        problems.append("call-spot's last attempt did not run on the fallback queue")
    flaky = [
        j for j in world.executed if j.submission.tags.get("miniwdl-serverless:job") == "call-flaky"
    ]
    if len(flaky) != 2:
        problems.append(f"call-flaky ran {len(flaky)} attempts, not 2 (fail, then succeed)")
    return problems


INJECTS = {"crash": "crash", "timeout": "timeout", "transient": "transient"}


def _injected(scenario: Scenario, world: World) -> list[str]:
    """A scenario whose fault never happened proves nothing."""
    what = INJECTS.get(scenario.fault_class)
    if what is not None and not world.faults.injected.get(what):
        return [f"the {what} was never injected"]
    if scenario.cancel_at is not None and not world.aborted:
        return ["the execution was never stopped"]
    if scenario.lose and not world.lost:  # (a lost event the run never needed, say a
        return ["no event was lost"]  # terminated job's, leaves the reconciler nothing to do)
    if scenario.dead_letter and world.dead_letters.messages:
        return ["a dead letter was never replayed"]
    return []
