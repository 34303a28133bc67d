"""The logs function under hostile requests (issue 9): paths with traversal, absolute paths,
NUL, unicode, links planted in the run directory (to outside, to /proc/self/environ, to the
runs' parent), FIFOs and devices; numbers of the wrong type; run records whose run directory
is not one. Property: it answers (data or a named refusal), never raises, never hangs, and
never serves anything from outside the run directory."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from miniwdl_serverless.adapters.memory import MemoryStore
from miniwdl_serverless.controller import logs
from miniwdl_serverless.core.records import RUN_RUNNING, Run

from .strategies import SPECIAL_TEXT, json_values
from .world import SECRET, Confined, finishes_within

REQUESTED = [
    "workflow.log",
    "../outside/victim.txt",
    "../../outside/victim.txt",
    "/proc/self/environ",
    "{outside}/victim.txt",
    "out-link",
    "dir-link/keep.txt",
    "environ-link",
    "parent-link/../outside/victim.txt",
    "parent-link/r/workflow.log",
    "fifo",
    "zero",
    "call-t/stdout.txt",
    "call-t/../../../outside/victim.txt",
    "call-t/./../workflow.log",
    "./workflow.log",
    "call-t",
    "",
    "//workflow.log",
    "workflow.log\x00.txt",
]
requests = st.fixed_dictionaries(
    {"run_id": st.sampled_from(["r", "r"]) | json_values},
    optional={
        "path": st.sampled_from(REQUESTED) | st.sampled_from(SPECIAL_TEXT) | json_values,
        "tail_bytes": st.integers(-5, 10**30) | json_values,
        "offset": st.integers(-5, 10**30) | json_values,
        "max_bytes": st.integers(-5, 10**30) | json_values,
    },
)
RUN_DIRS = ["{run}", "{efs}", "/", "relative", "{outside}", "{efs}/../outside", "", "{run}/.."]


def world_with_run(base: Path) -> tuple[Confined, Path]:
    world = Confined.make(base)
    run_dir = world.efs / "runs" / "r"
    (run_dir / "call-t").mkdir(parents=True)
    (run_dir / "workflow.log").write_text("started\n")
    (run_dir / "call-t" / "stdout.txt").write_text("hello\n")
    os.symlink(world.outside / "victim.txt", run_dir / "out-link")
    os.symlink(world.outside / "dir", run_dir / "dir-link")
    os.symlink("/proc/self/environ", run_dir / "environ-link")
    os.symlink(world.efs, run_dir / "parent-link")
    os.symlink("/dev/zero", run_dir / "zero")
    os.mkfifo(run_dir / "fifo")
    return world, run_dir


def ask(world: Confined, run_dir: Path, recorded: str, request: dict[str, Any]) -> None:
    def fill(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return (
            text.replace("{run}", str(run_dir))
            .replace("{efs}", str(world.efs))
            .replace("{outside}", str(world.outside))
        )

    store = MemoryStore()
    store.put_run(Run("r", run_dir=fill(recorded), status=RUN_RUNNING))
    request = {key: fill(value) for key, value in request.items()}
    result = finishes_within(lambda: logs.read_run_file(request, store, root=str(world.efs)), 10)
    assert isinstance(result, dict)
    if "error" in result:
        assert result["error"] in ("Forbidden", "NotFound", "BadRequest"), result
    else:
        assert result["data"] in ("started\n", "hello\n", "") or "started" in result["data"]
    text = json.dumps(result)
    environ = Path("/proc/self/environ").read_bytes().split(b"\0")[0].decode(errors="replace")
    assert SECRET not in text and environ not in text and "keep" not in result.get("data", "")
    assert world.untouched()


@given(requests, st.sampled_from(RUN_DIRS))
def test_hostile_log_requests(request, recorded):
    with tempfile.TemporaryDirectory(prefix="hostile-logs-") as base:
        world, run_dir = world_with_run(Path(base))
        ask(world, run_dir, recorded, request)


def test_every_requested_path_from_every_recorded_run_dir(tmp_path):
    world, run_dir = world_with_run(tmp_path)
    for recorded in RUN_DIRS:
        for path in REQUESTED:
            ask(world, run_dir, recorded, {"run_id": "r", "path": path})


def test_found_7_a_path_with_a_nul_is_a_bad_request(tmp_path):
    """Before: os.open raised ValueError ("embedded null byte") out of the logs function."""
    world, run_dir = world_with_run(tmp_path)
    store = MemoryStore()
    store.put_run(Run("r", run_dir=str(run_dir), status=RUN_RUNNING))
    request = {"run_id": "r", "path": "workflow.log\x00.txt"}
    result = logs.read_run_file(request, store, root=str(world.efs))
    assert result["error"] == "BadRequest" and "NUL" in result["message"]
