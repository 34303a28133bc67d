"""Local tasks in containers (`run --container`), with a stand-in engine: a ``docker`` first on
PATH that answers ``info``, records its arguments and runs the command itself with bash
(tests/e2e/data/standin_engine.py). What it records is what a real engine would be asked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miniwdl_serverless.core.containers import Engine
from miniwdl_serverless.core.resources import DEFAULT_IMAGE, resources_for
from miniwdl_serverless.local import batch_executor

STANDIN = Path(__file__).parent / "data" / "standin_engine.py"
REPO = Path(__file__).resolve().parents[2]

WORKFLOW = """
version 1.0
task count {
  input { File f  Int n }
  command <<<
    wc -l < ~{f} > lines.txt
    echo "~{n} $(pwd) ${AWS_BATCH_JOB_ID:+job} ${HOME:-nohome}"
    echo to-stderr >&2
  >>>
  output { Int lines = read_int("lines.txt")  String said = read_string(stdout()) }
  runtime { docker: "alpine:3.19"  cpu: 2  memory: "1 GiB" }
}
task plain {
  input { Int n }
  command <<< echo $((~{n} * 10)) >>>
  output { Int out = read_int(stdout()) }
}
workflow w {
  input { File f }
  call count { input: f = f, n = 1 }
  scatter (i in [1, 2, 3]) { call plain { input: n = i } }
  output { Int lines = count.lines  String said = count.said  Array[Int] outs = plain.out }
}
"""

SLOW = """
version 1.0
task slow {
  command <<< sleep 60 >>>
  runtime { docker: "alpine:3.19" }
}
"""


@pytest.fixture
def engine_on_path(tmp_path, monkeypatch):
    """The stand-in ``docker`` first on PATH; returns the file its calls are recorded in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(f'#!/bin/sh\nexec {sys.executable} {STANDIN} "$@"\n')
    docker.chmod(0o755)
    log = tmp_path / "engine.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_LOG", str(log))
    monkeypatch.delenv("MINIWDL_SERVERLESS_CONTAINER", raising=False)
    batch_executor.engine_works.cache_clear()
    yield log
    batch_executor.engine_works.cache_clear()


def _calls(log: Path, command: str) -> list[list[str]]:
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [call for call in calls if call[:1] == [command]]


def _option(call: list[str], name: str) -> list[str]:
    return [call[i + 1] for i, word in enumerate(call[:-1]) if word == name]


@pytest.fixture
def in_engine(embedded, monkeypatch, capsys):
    """Run the CLI's arguments in process on the session's embedded AWS, its tasks in the
    engine ``--container`` picks (as local_run._run_local does)."""
    from miniwdl_serverless.cli import local_run
    from miniwdl_serverless.cli.main import parse_run_args

    def run(args: list[str]) -> tuple[int, str, str, Engine | None]:
        capsys.readouterr()
        parsed = parse_run_args(args)
        parsed.engine = batch_executor.container_engine(parsed.container, parsed.as_me)
        monkeypatch.setattr(embedded.batch_executor, "engine", parsed.engine)
        code = local_run.execute(embedded, local_run.build_execution_input(parsed), False)
        captured = capsys.readouterr()
        return code, captured.out, captured.err, parsed.engine

    return run


def _workflow(tmp_path: Path) -> tuple[Path, Path]:
    source = tmp_path / "w.wdl"
    source.write_text(WORKFLOW)
    data = tmp_path / "user" / "data.txt"
    data.parent.mkdir()
    data.write_text("a\nb\nc\n")
    return source, data


@pytest.mark.parametrize("mode", ["docker", "auto"])
def test_tasks_run_in_their_images_with_mounts_limits_and_the_same_outputs(
    mode, tmp_path, engine_on_path, in_engine
):
    source, data = _workflow(tmp_path)
    args = [str(source), f"f={data}", "--dir", str(tmp_path / "runs"), "--container", mode]
    code, out, err, engine = in_engine([*args, "--as-me"])
    assert code == 0, err
    assert engine == Engine("docker", f"{os.getuid()}:{os.getgid()}")
    report = json.loads(out)
    outputs = report["outputs"]
    assert outputs["w.lines"] == 3 and outputs["w.outs"] == [10, 20, 30]
    call_dir = Path(report["dir"]) / "call-count"
    # the command ran in the call's work directory with the job's environment only
    assert outputs["w.said"] == f"1 {call_dir}/work job nohome"
    assert (call_dir / "stderr.txt").read_text() == "to-stderr\n"

    runs = _calls(engine_on_path, "run")
    assert len(runs) == 4  # count, and the scatter's three shards (jobs or array children)
    images = sorted(call[-4] for call in runs)  # IMAGE /bin/bash -ec SCRIPT
    assert images == ["alpine:3.19", *[DEFAULT_IMAGE] * 3]
    for call in runs:
        assert call[:2] == ["run", "--rm"]
        assert _option(call, "--name")[0].startswith("msls-")
        assert _option(call, "--user") == [f"{os.getuid()}:{os.getgid()}"]
        assert any(e.startswith("AWS_BATCH_JOB_ID=") for e in _option(call, "-e"))
    count = next(call for call in runs if "alpine:3.19" in call)
    batch = resources_for({"cpu": 2, "memory_reservation": 2**30}, {})  # what Batch is given
    assert _option(count, "--cpus") == ["2"] and _option(count, "--memory") == [
        f"{batch.memory_mib}m"
    ]
    assert _option(count, "-w") == [f"{call_dir}/work"]
    mounts = _option(count, "-v")
    assert f"{call_dir}:{call_dir}" in mounts
    assert f"{data}:{data}:ro" in mounts  # the input, read-only where its link points
    assert (call_dir / "work" / "_miniwdl_inputs").exists()
    linked = [p for p in (call_dir / "work" / "_miniwdl_inputs").rglob("*") if p.is_symlink()]
    assert [os.readlink(p) for p in linked] == [str(data)]  # a link, not a copy
    shards = [call for call in runs if call is not count]
    assert all(_option(call, "--cpus") == ["1"] for call in shards)
    for call in shards:  # each shard's own call directory (an array child's too) is used
        workdir = _option(call, "-w")[0]
        assert workdir.endswith("/work") and workdir[: -len("/work")] + ":" in " ".join(
            _option(call, "-v")
        )


RETRIED = """
version 1.0
task again {
  input { File f }
  command <<<
    echo try >> ../tries.log
    cat ~{f} > copy.txt
    echo "$(pwd)"
    [ "$(wc -l < ../tries.log)" -ge 2 ]
  >>>
  output { String ran_in = read_string(stdout())  File copy = "copy.txt" }
  runtime { docker: "alpine:3.19"  maxRetries: 1 }
}
"""


def test_a_retry_runs_in_work2_with_its_own_inputs_mounted(tmp_path, engine_on_path, in_engine):
    source = tmp_path / "again.wdl"
    source.write_text(RETRIED)
    data = tmp_path / "user" / "data.txt"
    data.parent.mkdir()
    data.write_text("a\n")
    args = [str(source), f"f={data}", "--dir", str(tmp_path / "runs"), "--container", "docker"]
    code, out, err, _ = in_engine(args)
    assert code == 0, err
    report = json.loads(out)
    call_dir = Path(report["dir"]) / "call-again"
    assert report["outputs"]["again.ran_in"] == f"{call_dir}/work2"
    assert os.path.realpath(report["outputs"]["again.copy"]) == str(call_dir / "work2/copy.txt")
    first, second = _calls(engine_on_path, "run")
    assert _option(first, "-w") == [f"{call_dir}/work"]
    assert _option(second, "-w") == [f"{call_dir}/work2"]
    assert f"{data}:{data}:ro" in _option(second, "-v")
    linked = list((call_dir / "work2" / "_miniwdl_inputs").rglob("data.txt"))
    assert [os.readlink(p) for p in linked] == [str(data)]
    assert (call_dir / "stdout.txt").read_text() == f"{call_dir}/work\n"  # try 1's, kept


def test_a_failing_task_fails_as_with_bash(tmp_path, engine_on_path, in_engine):
    source = tmp_path / "t.wdl"
    source.write_text(
        "version 1.0\ntask t {\n  command <<< echo oops >&2; exit 7 >>>\n"
        '  runtime { docker: "alpine:3.19" }\n}\n'
    )
    code, _, err, engine = in_engine([str(source), "--dir", str(tmp_path), "--container", "docker"])
    assert engine == Engine("docker") and code == 7
    info = json.loads(err[: err.index("\n}\n") + 3])
    assert info["cause"]["exit_status"] == 7 and "oops" in info["cause"]["stderr_tail"]
    assert len(_calls(engine_on_path, "run")) == 1


def test_a_cancelled_task_stops_its_container(tmp_path, engine_on_path, in_engine):
    source = tmp_path / "slow.wdl"
    source.write_text(SLOW)
    # long enough for the task's container to have started on a loaded machine
    args = [str(source), "--dir", str(tmp_path), "--container", "docker", "--timeout", "10"]
    code, _, _, _ = in_engine(args)
    assert code != 0
    (run,) = _calls(engine_on_path, "run")
    removed = _calls(engine_on_path, "rm")
    # the cancel and the job's own end may both remove it (rm -f: the second is harmless)
    assert removed and all(r == ["rm", "-f", _option(run, "--name")[0]] for r in removed)


def test_auto_runs_with_bash_when_docker_info_fails(
    tmp_path, engine_on_path, in_engine, monkeypatch
):
    monkeypatch.setenv("STANDIN_INFO", "1")
    monkeypatch.setattr(batch_executor.shutil, "which", _only_docker(batch_executor.shutil.which))
    source, data = _workflow(tmp_path)
    code, out, err, engine = in_engine([str(source), f"f={data}", "--dir", str(tmp_path)])
    assert code == 0 and engine is None
    assert err.count("no container engine") == 1
    assert json.loads(out)["outputs"]["w.outs"] == [10, 20, 30]
    assert _calls(engine_on_path, "run") == [] and _calls(engine_on_path, "info") == [["info"]]


def test_a_named_engine_that_does_not_answer_is_an_error(engine_on_path, monkeypatch):
    monkeypatch.setenv("STANDIN_INFO", "1")
    with pytest.raises(RuntimeError, match="docker info"):
        batch_executor.container_engine("docker")
    assert batch_executor.container_engine("none") is None
    monkeypatch.setenv("MINIWDL_SERVERLESS_CONTAINER", "none")
    assert batch_executor.container_engine(None) is None


@pytest.mark.parametrize(
    ("embedded_aws", "mode"), [("memory", []), ("full", ["--container", "docker"])]
)
def test_the_cli_runs_tasks_in_the_engine(tmp_path, engine_on_path, embedded_aws, mode):
    """`miniwdl-serverless run` end to end in its own process: auto finds the stand-in; and
    on moto's Batch (its jobs are moto's) as on the in-process one."""
    source, data = _workflow(tmp_path)
    command = [sys.executable, "-m", "miniwdl_serverless.cli.main", "run", str(source), *mode]
    command += [f"f={data}", "--dir", str(tmp_path / "runs"), "--no-state", "--no-progress"]
    command += ["--embedded-aws", embedded_aws]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"]["w.lines"] == 3
    assert "no container engine" not in done.stderr
    assert len(_calls(engine_on_path, "run")) == 4


def _only_docker(which):
    """shutil.which that finds no podman (this machine's may answer ``info``)."""
    return lambda program, *args, **kwargs: None if program == "podman" else which(program)
