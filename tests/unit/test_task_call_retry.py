"""controller/task_call.py for a retry: miniwdl's own names for each try, the inputs under the
try's own ``work{k+1}/_miniwdl_inputs``, and outputs read from its working directory only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import WDL
from WDL.runtime.config import Loader
from WDL.runtime.task_container import TaskContainer

from miniwdl_serverless.controller.task_call import ExternalContainer
from miniwdl_serverless.core import call_files

CFG = Loader(logging.getLogger("test"), [])


class _Stock(TaskContainer):
    """miniwdl's own container, only for its names."""

    def _run(self, logger, terminating, command):  # noqa: ANN001, ANN202, ARG002
        raise NotImplementedError


@pytest.mark.parametrize("attempt", [0, 1, 2, 10])
def test_our_names_are_miniwdls(tmp_path, attempt):
    stock = _Stock(CFG, "t", str(tmp_path))
    stock.try_counter = attempt + 1
    ours = ExternalContainer(CFG, "t", str(tmp_path), attempt)
    for name in ("host_work_dir", "host_stdout_txt", "host_stderr_txt"):
        assert getattr(ours, name)() == getattr(stock, name)(), name
    assert os.path.basename(ours.host_work_dir()) == call_files.work_dir(attempt)
    assert os.path.basename(ours.host_stderr_txt()) == call_files.stderr_txt(attempt)


def _retry(tmp_path: Path) -> tuple[ExternalContainer, Path, Path, Path]:
    call = tmp_path / "call-t"
    (call / "work").mkdir(parents=True)
    (call / "work2").mkdir()
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "x.txt").write_text(folder.name)
    container = ExternalContainer(CFG, "t", str(call), attempt=1)
    container.add_paths([str(a / "x.txt")])
    container.add_paths([str(b / "x.txt")])  # the same name, added later: its own folder
    return container, call, a, b


def test_a_retrys_inputs_are_placed_in_its_own_work2(tmp_path):
    container, call, a, b = _retry(tmp_path)
    inputs = f"{call}/work2/_miniwdl_inputs"
    assert container.input_path_map == {
        str(a / "x.txt"): f"{inputs}/0/x.txt",
        str(b / "x.txt"): f"{inputs}/2/x.txt",
    }
    assert container.input_path_map_rev == {v: k for k, v in container.input_path_map.items()}


def test_a_retrys_outputs_come_from_its_work2(tmp_path):
    container, call, a, _ = _retry(tmp_path)
    (call / "work" / "out.txt").write_text("try 1")
    (call / "work2" / "out.txt").write_text("try 2")
    (call / "work2" / "sub").mkdir()
    (call / "stdout2.txt").write_text("")
    work2 = str(call / "work2")
    assert container.host_path("out.txt") == f"{work2}/out.txt"
    assert container.host_path(f"{work2}/out.txt") == f"{work2}/out.txt"  # as the job saw it
    assert container.host_path(f"{call}/work/out.txt") == f"{work2}/out.txt"  # glob()'s
    assert container.host_path(f"{work2}/sub/") == f"{work2}/sub/"
    assert container.host_path(f"{call}/stdout.txt") == f"{call}/stdout2.txt"  # stdout()
    assert container.host_path(f"{work2}/_miniwdl_inputs/0/x.txt") == str(a / "x.txt")
    assert container.host_path("missing.txt") is None
    for outside in (f"{call}/work3/out.txt", f"{call}/work2/../work/out.txt", "../work/out.txt"):
        with pytest.raises(WDL.runtime.error.OutputError):
            container.host_path(outside)
    os.symlink(call / "work" / "out.txt", call / "work2" / "first.txt")  # into try 1's
    with pytest.raises(WDL.runtime.error.OutputError):
        container.host_path("first.txt")
