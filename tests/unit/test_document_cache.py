"""Parsed WDL documents are kept across warm invocations (controller/context.py:_documents),
keyed by the bundle's digest from the run record: a second load_context of a run in the same
process parses nothing, and what is kept only ever came from a bundle whose SHA-256 matched
that digest (never from a file a task could have rewritten)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import WDL

from miniwdl_serverless.controller import context
from miniwdl_serverless.core.errors import RunError

from .harness import Harness

WORKFLOW = """
version 1.0
task hello {
  command <<< echo hi >>>
  output { String out = read_string(stdout()) }
}
workflow w { call hello }
"""


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The documents miniwdl parses (its loader's entry point, as wdl_source.py calls it)."""
    seen: list[str] = []
    real = WDL.Tree._load_async

    def counting(uri: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(uri)
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(WDL.Tree, "_load_async", counting)
    with context._documents_lock:
        kept = dict(context._documents)
        context._documents.clear()
    yield seen
    with context._documents_lock:
        context._documents.clear()
        context._documents.update(kept)


def started(tmp_path: Path) -> Harness:
    harness = Harness(tmp_path)
    harness.start(WORKFLOW)
    return harness


def test_a_warm_container_parses_a_run_once(tmp_path: Path, parses: list[str]) -> None:
    harness = started(tmp_path)
    assert len(parses) == 1  # start parsed it, and kept it
    with context._documents_lock:
        context._documents.clear()  # a container that did not start the run
    first = context.load_context(harness.run(), harness.ports)
    second = context.load_context(harness.run(), harness.ports)
    assert len(parses) == 2  # once more for the cold load, none for the warm one
    assert second.doc is first.doc


def test_the_kept_document_is_the_digest_checked_one(tmp_path: Path, parses: list[str]) -> None:
    harness = started(tmp_path)
    run = harness.run()
    kept = context.load_context(run, harness.ports).doc
    bundle = Path(str(run.bundle_path))
    forged = {"main": "forged.wdl", "sources": {"forged.wdl": WORKFLOW.replace("hi", "pwned")}}
    bundle.write_text(json.dumps(forged))  # a task that could write the run directory
    assert context.load_context(run, harness.ports).doc is kept  # the file is not read again
    with context._documents_lock:
        context._documents.clear()
    with pytest.raises(RunError) as failed:  # cold: read back, checked, refused
        context.load_context(run, harness.ports)
    assert failed.value.name == "TamperedState"
    with context._documents_lock:
        assert not context._documents  # nothing kept from the forged bundle


def test_one_miniwdl_configuration_per_settings_in_a_warm_container(monkeypatch):
    """make_config builds miniwdl's Loader once per configuration (its defaults file and the
    environment are read once), and a different run map or environment is another one."""
    from miniwdl_serverless.controller.context import make_config
    from miniwdl_serverless.core.options import parse_run_options

    options = parse_run_options({"workflow_source": "version 1.0\nworkflow w {}"})
    first = make_config(options, "/")
    assert make_config(options, "/") is first
    other = parse_run_options(
        {"workflow_source": "version 1.0\nworkflow w {}", "config": {"CALL_CACHE__GET": "false"}}
    )
    assert make_config(other, "/") is not first
    assert not make_config(other, "/")["call_cache"].get_bool("get")
    monkeypatch.setenv("MINIWDL__TASK_RUNTIME__DEFAULTS", '{"cpu": 3}')
    changed = make_config(options, "/")
    assert changed is not first and changed["task_runtime"].get_dict("defaults")["cpu"] == 3
