"""Input localization: URI File and Directory values (s3, http, https, ftp, gs) downloaded into
the download cache on EFS before the calls that need them run.

A call's inputs (and its task's URI defaults, as miniwdl's task runner takes them) are probed
for their current version (ETag, version id, Last-Modified): one version of one URI is one
cache entry (core/localizing.py:cache_path), claimed in the cache table by one downloader at a
time. Small downloads happen here, in the Lambda; larger ones are Batch download jobs whose
end (``on_download_event``) renames them into place. A call whose inputs are still downloading
waits, its run one of the entry's waiters, its submit lease given back; whoever settles the
entry resubmits the waiting calls of every waiting run (or fails the run, naming the URI), and
the reconciler resubmits a waiting call that was never told (replaying the download job's end
if it was lost). An entry a task changed since it settled is downloaded again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from WDL import Env, Tree, Value
from WDL.runtime._io_helpers import _add_downloadable_defaults

from miniwdl_serverless.controller.actions import Submit
from miniwdl_serverless.controller.context import RunContext, load_context
from miniwdl_serverless.controller.end import fail_run
from miniwdl_serverless.controller.ports import (
    CacheEntry,
    CacheStore,
    Ports,
    Remotes,
    TransientError,
)
from miniwdl_serverless.core import localizing, work
from miniwdl_serverless.core.decisions import job_failure
from miniwdl_serverless.core.errors import RunError
from miniwdl_serverless.core.events import BatchJobDetail
from miniwdl_serverless.core.ids import TAG_RUN
from miniwdl_serverless.core.localizing import (
    DOWNLOAD_TAG,
    JOB_LEASE_SECONDS,
    LEASE_SECONDS,
    DownloadError,
    Remote,
    Stamp,
)
from miniwdl_serverless.core.records import RUN_RUNNING, RUNNING

log = logging.getLogger("miniwdl_serverless.controller")
READY, PENDING = "ready", "pending"


@dataclass
class Localized:
    """A call's inputs with every URI replaced by its local copy's path, and what they are."""

    inputs: Env.Bindings[Value.Base]
    remotes: list[Remote] = field(default_factory=list)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # local path → provenance


def uris_in(env: Env.Bindings[Value.Base]) -> list[tuple[str, bool]]:
    """The downloadable URIs among File and Directory values (nested ones too), once each."""
    found: dict[tuple[str, bool], None] = {}

    def visit(value: Value.Base) -> str:
        text = str(value.value)
        if localizing.is_downloadable(text):
            found[(text, isinstance(value, Value.Directory))] = None
        return text

    Value.rewrite_env_paths(env, visit)
    return list(found)


def probe(ctx: RunContext, uri: str, directory: bool) -> Remote:
    """The URI's current version, probed once per invocation and run."""
    key = (uri, directory)
    if key not in ctx.probed:
        ctx.probed[key] = _remotes(ctx.ports).probe(uri, directory, ctx.downloads.requester_pays)
    return ctx.probed[key]


def check_input_uris(ports: Ports, requester_pays: bool, env: Env.Bindings[Value.Base]) -> None:
    """At start, before any job: every URI input exists and can be read (a clear error naming
    it, and why, instead of a call failing later)."""
    problems = []
    for uri, directory in uris_in(env):
        try:
            _remotes(ports).probe(uri, directory, requester_pays)
        except DownloadError as exn:
            problems.append(f"{exn.uri} ({exn.reason})")
    if problems:
        raise RunError.of("DownloadError", "cannot download input: " + ", ".join(problems))


def localized_inputs(ctx: RunContext, task: Tree.Task, env: Env.Bindings[Value.Base]) -> Localized:
    """The call's inputs with each URI (its task's URI defaults too, as miniwdl's task runner
    takes them) replaced by the cache path of its current version: probed, not downloaded
    (``fetch_missing`` does that; a call-cache hit needs no download). Raises DownloadError for
    a URI that cannot be read."""
    with_defaults = _add_downloadable_defaults(ctx.cfg, task.available_inputs, env)
    needed = uris_in(with_defaults)
    if not needed:
        return Localized(env)
    local: dict[str, str] = {}
    result = Localized(env)
    for uri, directory in needed:
        remote = probe(ctx, uri, directory)
        path = localizing.cache_path(_root(ctx), remote)
        local[uri] = path
        result.remotes.append(remote)
        result.sources[path] = {"uri": uri, "version": remote.version, "size": remote.size}

    def replace(value: Value.Base) -> str:
        return local.get(str(value.value), str(value.value))

    result.inputs = Value.rewrite_env_paths(with_defaults, replace)
    return result


def fetch_missing(
    ctx: RunContext, localized: Localized, job_id: str, attempt: int, reconciling: bool = False
) -> list[str]:
    """Download what is not in the cache yet; the URIs still coming (the call's run waits for
    them as one of their entries' waiters). The reconciler's resubmission also has the
    submitter describe the Batch job of a download still going: a lost end is replayed."""
    claimant = localizing.waiter_id(ctx.run_id, job_id, attempt)
    return [r.uri for r in localized.remotes if ensure(ctx, r, claimant, reconciling) == PENDING]


def ensure(ctx: RunContext, remote: Remote, claimant: str, reconciling: bool = False) -> str:
    """READY once the entry's copy is in place and intact; PENDING while it downloads (the run
    is one of its waiters)."""
    cache, root = _cache(ctx.ports), _root(ctx)
    key, path = localizing.entry_key(root, remote), localizing.cache_path(root, remote)
    for _ in range(3):  # an entry settling or expiring between our read and our write
        entry = cache.get_entry(key)
        replacing = None
        if entry is not None and entry.status == "ready":
            expected = Stamp.from_json(entry.data.get("stamp"))
            if localizing.stamp_matches(ctx.ports.files.stamp(path), expected):
                return READY
            ctx.log(f"download cache entry {path} changed since it was downloaded: again")
            replacing = entry.claimant
        if entry is not None and reconciling:
            _ask_about(ctx.ports, entry)  # its download job may have ended unheard of
        now = time.time()
        data = {"remote": remote.to_json(), "path": path, "root": root}
        held = LEASE_SECONDS if localizing.in_lambda(remote, ctx.downloads) else JOB_LEASE_SECONDS
        lease = now + held
        if cache.claim_entry(key, claimant, lease, now, replacing, data):
            return _download(ctx, key, remote, (path, claimant), data)
        if cache.add_waiter(key, ctx.run_id):
            ctx.log(f"waiting for {remote.uri}, being downloaded for another call")
            return PENDING
    raise TransientError(f"the download cache entry of {remote.uri} keeps changing")


def _ask_about(ports: Ports, entry: CacheEntry) -> None:
    """A download job's end that may never have reached us (a lost event): the submitter
    describes the job (outside the VPC) and hands an end back as a replay, as the reconciler
    replays a call's; the entry then settles and tells its waiters, this run among them."""
    batch_job_id = entry.data.get("batch_job_id")
    if entry.status == "downloading" and batch_job_id:
        ports.work.put([work.describe_item([str(batch_job_id)], time.time())])


def _download(
    ctx: RunContext, key: str, remote: Remote, where: tuple[str, str], data: dict[str, Any]
) -> str:
    path, claimant = where
    if not localizing.in_lambda(remote, ctx.downloads):
        _submit_download_job(ctx, key, remote, where, data)
        return PENDING
    files, partial = ctx.ports.files, localizing.partial_path(path, claimant)
    started = time.monotonic()
    try:
        files.remove_tree(os.path.dirname(partial))  # what a dead attempt of ours left
        _fetch_into(ctx.ports, remote, partial, ctx.downloads.requester_pays)
        problem = localizing.complete_download(remote, files.stamp(partial))
        if problem:
            raise DownloadError(remote.uri, problem)
        stamp = _into_place(ctx.ports, partial, path)
    except DownloadError as exn:
        waiters = _cache(ctx.ports).settle_entry(key, claimant, "failed", {"error": exn.reason})
        tell_waiters(ctx.ports, waiters or set(), failure=str(exn))
        raise
    seconds = time.monotonic() - started
    settled = _settle_ready(ctx.ports, key, claimant, remote, path, stamp)
    ctx.log(f"downloaded {remote.uri} ({stamp.size} bytes, {seconds:.1f} s) to {path}")
    ctx.ports.metrics.count("InputsDownloaded")
    ctx.ports.metrics.count("InputBytesDownloaded", stamp.size)
    tell_waiters(ctx.ports, settled)
    return READY


def _fetch_into(ports: Ports, remote: Remote, partial: str, requester_pays: bool) -> None:
    remotes = _remotes(ports)
    targets = (
        [
            (f"{remote.uri.rstrip('/')}/{f.relative}", os.path.join(partial, f.relative))
            for f in remote.files
        ]
        if remote.directory
        else [(remote.uri, partial)]
    )
    for uri, target in targets:
        with ports.files.open_new(target) as out:
            remotes.fetch(uri, remote, requester_pays, out)


def _into_place(ports: Ports, partial: str, path: str) -> Stamp:
    """Rename the download into place; what was there (a copy a task changed, or a link it
    planted) is moved aside first and deleted with the partial directory."""
    files, scratch = ports.files, os.path.dirname(partial)
    try:
        files.move(partial, path)
    except FileExistsError:
        files.move(path, os.path.join(scratch, ".stale"))
        files.move(partial, path)
    files.remove_tree(scratch)
    stamp = files.stamp(path)
    assert stamp is not None
    return stamp


def _settle_ready(  # noqa: PLR0913 - the entry, its claimant, what and where
    ports: Ports, key: str, claimant: str, remote: Remote, path: str, stamp: Stamp
) -> set[str]:
    data = {"remote": remote.to_json(), "path": path, "stamp": stamp.to_json()}
    return _cache(ports).settle_entry(key, claimant, "ready", data) or set()


def _submit_download_job(
    ctx: RunContext, key: str, remote: Remote, where: tuple[str, str], data: dict[str, Any]
) -> None:
    """A Batch job downloads it into the claimant's partial path; its end settles the entry.
    The claimant's run waits like everyone else's; the entry names the job (for a lost end)."""
    path, claimant = where
    queue = ctx.options.task_queue or ctx.ports.default_queue or ""
    tags = dict(ctx.options.tags)
    tags.update({TAG_RUN: ctx.run_id, DOWNLOAD_TAG: key})
    name = localizing.download_job_name(ctx.run_id, key)
    partial = localizing.partial_path(path, claimant)
    submission = localizing.download_submission(remote, ctx.downloads, name, queue, partial, tags)
    _cache(ctx.ports).add_waiter(key, ctx.run_id)
    queued = work.QueuedSubmission(
        submission, ctx.run_id, entry=key, claimant=claimant, entry_data=data
    )
    ctx.ports.work.put([work.submit_item(queued)])  # the submitter names the job on the entry
    ctx.log(f"downloading {remote.uri} ({remote.size} bytes) as a Batch job")


def on_download_event(detail: BatchJobDetail, ports: Ports) -> str:
    """A Batch download job ended: rename its download into place and settle the entry (or
    fail it, naming the URI and Batch's reason), then tell every waiter."""
    if detail.status not in ("SUCCEEDED", "FAILED"):
        return f"download {detail.status.lower()}"
    key = detail.tags.get(DOWNLOAD_TAG, "")
    cache = _cache(ports)
    entry = cache.get_entry(key)
    if entry is not None and entry.status == "ready" and detail.status == "SUCCEEDED":
        tell_waiters(ports, entry.waiters)  # again: the first telling may have died
        return "download told again"
    if entry is None or entry.status != "downloading" or not entry.claimant:
        return "download stale"
    remote = Remote.from_json(entry.data["remote"])
    path = str(entry.data["path"])
    partial = localizing.partial_path(path, entry.claimant)
    problem = None
    if detail.status == "FAILED":
        problem = f"the download job failed: {detail.status_reason or 'no reason given'}"
        if detail.log_stream:
            problem += f" (log stream {detail.log_stream})"
    else:
        problem = localizing.complete_download(remote, ports.files.stamp(partial))
    if problem is not None:
        waiters = cache.settle_entry(key, entry.claimant, "failed", {"error": problem})
        tell_waiters(ports, waiters or set(), failure=str(DownloadError(remote.uri, problem)))
        return "download failed"
    stamp = _into_place(ports, partial, path)
    waiters = _settle_ready(ports, key, entry.claimant, remote, path, stamp)
    ports.metrics.count("InputsDownloaded")
    ports.metrics.count("InputBytesDownloaded", stamp.size)
    tell_waiters(ports, waiters)
    return "downloaded"


def refused_download(ports: Ports, queued: work.QueuedSubmission, error: str) -> None:
    """Batch refused a download job: the entry fails, and every run waiting for it with it."""
    assert queued.entry is not None and queued.claimant is not None
    remote = Remote.from_json(queued.entry_data["remote"])
    problem = f"AWS Batch refused the download job: {error}"
    waiters = _cache(ports).settle_entry(
        queued.entry, queued.claimant, "failed", {"error": problem}
    )
    tell_waiters(ports, waiters or set(), failure=str(DownloadError(remote.uri, problem)))


def tell_waiters(ports: Ports, waiters: set[str], failure: str | None = None) -> None:
    """Every run that waited for the entry: its calls waiting for a download resubmitted (their
    inputs may be there now; one still waiting for another waits again), or its run failed with
    the download's error. A run that cannot be told now is told by the reconciler, which
    resubmits calls left without a Batch job."""
    for run_id in sorted(waiters):
        try:
            _tell(ports, run_id, failure)
        except Exception:  # noqa: BLE001 - the reconciler resubmits a waiter never told
            log.warning("could not tell run %s of its download", run_id, exc_info=True)


def _tell(ports: Ports, run_id: str, failure: str | None) -> None:
    run = ports.store.get_run(run_id)
    if run is None or run.status != RUN_RUNNING:
        return
    waiting = [  # attempts marked for submission, with no Batch job and their lease given back
        job
        for job in ports.store.query_jobs(run_id, [RUNNING])
        if job.batch_job_name and not job.batch_job_id and (job.lease_until or 0) <= time.time()
    ]
    if not waiting:
        return
    ctx = load_context(run, ports)
    if failure is not None:
        cause = {"error": "DownloadError", "message": failure}
        job_id = waiting[0].job_id
        fail_run(ctx, job_failure(ctx.target_info(), run_id, ctx.run_dir, job_id, cause))
        return
    from miniwdl_serverless.controller.drive import Driver  # drive imports the steps

    Driver(ports, ctx).run([Submit(job, None, job.attempt, resubmit=True) for job in waiting])


def _root(ctx: RunContext) -> str:
    return localizing.cache_root(ctx.downloads, ctx.run_dir)


def _remotes(ports: Ports) -> Remotes:
    if ports.remotes is None:
        raise RunError.of("InputError", "URI inputs cannot be downloaded here (no remotes)")
    return ports.remotes


def _cache(ports: Ports) -> CacheStore:
    if ports.cache is None:
        raise RunError.of("InputError", "URI inputs need the cache table (CACHE_TABLE)")
    return ports.cache


def provenance(sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What ``downloads.json`` in a call directory says: each local copy and its origin."""
    return {path: dict(source) for path, source in sorted(sources.items())}
