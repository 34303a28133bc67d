"""Ids and names, one vocabulary everywhere.

- run id: the Step Functions execution name (the last part of its ARN);
- job id: a job of the run's graph (miniwdl's id, e.g. ``call-t-07``; inside a sub-workflow
  prefixed with the calling job's id and '/': ``call-sub/call-t-07``);
- Batch job id: the AWS Batch job running one attempt of a call (``batch_job_id``);
- Batch job name: deterministic per (run, job, attempt), so a retried submission finds it.
"""

from __future__ import annotations

import hashlib
import os
import re

TAG_RUN = "miniwdl-serverless:run"
TAG_JOB = "miniwdl-serverless:job"
TAG_ATTEMPT = "miniwdl-serverless:attempt"

# The stack that submitted a job: the only jobs its functions may terminate (template.yaml)
TAG_STACK = "miniwdl-serverless:stack"

# An array job of a scatter's shards (core/arrays.py): the array's id, and the width of one
# record of its index file (the child at index i runs the shard named by record i)
TAG_ARRAY = "miniwdl-serverless:array"
TAG_ARRAY_RECORD = "miniwdl-serverless:array-record"


def call_tags(run_id: str, job_id: str, attempt: int) -> dict[str, str]:
    """The tags that route a Batch job's events to its run, job and attempt."""
    return {TAG_RUN: run_id, TAG_JOB: job_id, TAG_ATTEMPT: str(attempt)}


BATCH_NAME_LIMIT = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def run_id_of(run: str) -> str:
    """The run id from an execution ARN or a run id."""
    return run.rsplit(":", 1)[-1]


def scoped_id(scope: str, local_id: str) -> str:
    """A graph job id from the scope (sub-workflow call job id or "") and the id within it."""
    return f"{scope}/{local_id}" if scope else local_id


def call_dir(run_dir: str, job_id: str) -> str:
    """Directory of a call: ``<run>/call-x-0`` or ``<run>/call-sub/call-x`` in sub-workflows."""
    return os.path.join(run_dir, *job_id.split("/"))


def batch_job_name(run_id: str, job_id: str, attempt: int) -> str:
    """Up to 128 characters of [A-Za-z0-9_-], the first alphanumeric (SubmitJob's rule).

    When the ids are already such characters the name is just them; otherwise (a character
    replaced, a leading '-' or '_', or too long) a digest of the exact ids keeps distinct jobs
    apart, e.g. the runs "sample.1" and "sample_1".
    """
    return _job_name(f"{run_id}-{job_id}-try{attempt + 1}")


def array_job_name(run_id: str, array_id: str) -> str:
    """The name of the array job of the shards ``array_id`` names (``core/arrays.py``), by the
    rules of ``batch_job_name``; ``-array`` where a call's attempt has ``-tryN``."""
    return _job_name(f"{run_id}-{array_id}-array")


def _job_name(raw: str) -> str:
    name = _UNSAFE.sub("_", raw)
    if name == raw and len(name) <= BATCH_NAME_LIMIT and name[0].isalnum():
        return name
    if not name[0].isalnum():
        name = "j" + name
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{name[: BATCH_NAME_LIMIT - 13]}-{digest}"


def safe_name(text: str, limit: int) -> str:
    """``text`` with characters Batch refuses in names replaced, cut to ``limit``."""
    return _UNSAFE.sub("_", text)[:limit]
