"""The fault-injection harness as part of ``make test``: the reduced size must pass (the full
size is ``make chaos``), and every port method must be classified as a read or a write."""

from __future__ import annotations

import io
import re

import pytest

from miniwdl_serverless.controller.ports import Ports

from .points import KINDS, PORTS, unclassified, write_points
from .runner import SIZES, main, run

SUMMARY = re.compile(
    r"^scenarios: (\d+), passed: (\d+), duplicate submissions: (\d+), "
    r"lost or changed outputs: (\d+), stuck runs: (\d+)$"
)


def test_every_port_method_is_classified_as_a_read_or_a_write():
    assert unclassified() == []


def test_every_port_of_the_controller_is_covered():
    fields = {name for name in Ports.__dataclass_fields__ if not name.startswith("default_")}
    reconcilers = {"runs", "dead_letters"}  # controller/reconcile.py:ReconcilePorts
    assert fields - {"stack_bucket", "budget"} == set(PORTS) - reconcilers  # budget: a value
    assert set(PORTS) == set(KINDS)


def test_the_write_points_include_every_handlers_writes():
    points = {f"{port}.{method}" for port, method in write_points()}
    for expected in [
        "store.create_run",
        "store.complete",
        "store.claim",
        "store.mark_running",
        "store.renew_lease",
        "files.prepare_call",
        "files.link_output",
        "batch.submit",
        "batch.terminate",
        "orchestrator.send_success",
        "uploads.upload_file",
    ]:
        assert expected in points


@pytest.mark.xdist_group("chaos")
def test_the_reduced_chaos_run_passes():
    out = io.StringIO()
    summary = run("reduced", out=out)
    lines = out.getvalue().splitlines()
    assert summary.ok, "\n".join(line for line in lines if "FAIL" in line or line[:1] == " ")
    match = SUMMARY.match(lines[-1])
    assert match is not None, lines[-1]
    scenarios, passed, duplicates, changed, stuck = map(int, match.groups())
    assert scenarios == passed >= 100 and duplicates == changed == stuck == 0


def test_a_failed_scenario_exits_non_zero():
    class Failed:
        ok = False

    assert main(["--size", "reduced"], run_size=lambda *a, **k: Failed()) == 1
    assert set(SIZES) == {"reduced", "full"}
