"""WDL programs of the kind miniwdl's own tests run (tests/*.t, test_4taskrun, test_6workflowrun,
test_7runner), through `miniwdl-serverless run`, agreeing with stock `miniwdl run` 1.16 (its
outputs here are what `python -m bench.miniwdl_bare run` printed for the same program):
Directory inputs, runtime overrides given as inputs, documents of one task, --env,
--no-outside-imports and the `_mock_interruptions` test hook; and a retried call's files, run
side by side with stock miniwdl (bench/miniwdl_bare.py) and compared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

DIR_WF = """
version development
workflow w {
  input { Directory d }
  call t { input: d = d }
  output { Array[String] names = t.names }
}
task t {
  input { Directory d }
  command <<< ls ~{d} | sort >>>
  output { Array[String] names = read_lines(stdout()) }
}
"""


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "d1"
    d.mkdir()
    (d / "a.txt").write_text("hello\n")
    (d / "b.txt").write_text("world\n")
    (tmp_path / "other").mkdir()
    return d


@pytest.mark.parametrize(
    "spelling",
    ["d1", "d1/", "{tmp}/d1", "{tmp}/d1/", "{tmp}/other/..//d1/.", "./d1//"],
)
def test_workflow_directory_input_from_the_command_line(run_cli, tmp_path, data_dir, spelling):
    wdl = write(tmp_path / "dir_wf.wdl", DIR_WF)
    arg = "d=" + spelling.format(tmp=tmp_path)
    code, stdout, stderr = run_cli([wdl, arg, "--dir", str(tmp_path / "runs")], cwd=str(tmp_path))
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"w.names": ["a.txt", "b.txt"]}


@pytest.mark.parametrize("spelling", ["{tmp}/d1/", "{tmp}/other/..//d1/./", "//{tmp}/d1"])
def test_workflow_directory_input_from_json(run_cli, tmp_path, data_dir, spelling):
    """The execution input as a deployed stack gets it: the path as the user spelt it."""
    wdl = write(tmp_path / "dir_wf.wdl", DIR_WF)
    inputs = write(tmp_path / "in.json", json.dumps({"w.d": spelling.format(tmp=tmp_path)}))
    code, stdout, stderr = run_cli([wdl, "-i", inputs, "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["outputs"] == {"w.names": ["a.txt", "b.txt"]}
    recorded = json.loads((Path(result["dir"]) / "inputs.json").read_text())
    assert recorded == {"w.d": str(data_dir)}  # one spelling, miniwdl's


def test_a_directory_input_does_not_open_its_siblings(run_cli, tmp_path, data_dir):
    """'d1' supplied does not allow 'd1x/...' (a prefix, not a parent), nor anything else."""
    secret = tmp_path / "d1x"
    secret.mkdir()
    (secret / "secret.txt").write_text("no\n")
    wdl = write(
        tmp_path / "peek.wdl",
        f"""
version development
workflow w {{
  input {{ Directory d }}
  File f = "{secret}/secret.txt"
  output {{ String s = read_string(f) }}
}}
""",
    )
    code, _, stderr = run_cli([wdl, f"d={data_dir}", "--dir", str(tmp_path / "runs")])
    assert code == 2
    assert "not expressly supplied with workflow inputs" in stderr
    assert f"{secret}/secret.txt" in stderr


RT_WF = """
version 1.1
workflow w {
  call t
  output { String out = t.out }
}
task t {
  command <<< echo "$AWS_BATCH_JOB_ID" >/dev/null; echo ok >>>
  output { String out = read_string(stdout()) }
  runtime { docker: "ubuntu:20.04" cpu: 1 }
}
"""


def _submitted_image(run_dir: Path) -> str:
    log = (run_dir / "workflow.log").read_text()
    line = next(line for line in log.splitlines() if "submitting call-t attempt 1" in line)
    return line.split("(", 1)[1].split(",", 1)[0]


def test_runtime_override_on_the_command_line(run_cli, tmp_path):
    wdl = write(tmp_path / "rt.wdl", RT_WF)
    args = [wdl, "t.runtime.docker=ubuntu:22.04", "--dir", str(tmp_path / "runs")]
    code, stdout, stderr = run_cli(args)
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["outputs"] == {"w.out": "ok"}
    assert _submitted_image(Path(result["dir"])) == "ubuntu:22.04"


def test_runtime_override_in_input_json(run_cli, embedded, tmp_path):
    wdl = write(tmp_path / "rt.wdl", RT_WF)
    inputs = write(tmp_path / "in.json", json.dumps({"w.t.runtime.cpu": 2}))
    code, stdout, stderr = run_cli([wdl, "-i", inputs, "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"w.out": "ok"}
    run_id = embedded.last_execution_arn.rsplit(":", 1)[-1]
    (job,) = [j for j in embedded.store.query_jobs(run_id) if j.job_id == "call-t"]
    assert job.runtime["cpu"] == 2  # the Batch job was sized by the override


@pytest.mark.parametrize(
    "override", ["t.requirements.cpu=2", "t.runtime.cpu=2", "t.requirements.container=x:1"]
)
def test_requirements_overrides_in_wdl_1_2(run_cli, tmp_path, override):
    wdl = write(
        tmp_path / "req.wdl",
        """
version 1.2
workflow w {
  call t
  output { String cpu = t.cpu  String image = t.image }
}
task t {
  command <<< echo ~{task.cpu} >>>
  output { String cpu = read_string(stdout())  String image = "~{task.container}" }
  requirements { cpu: 1  container: "ubuntu:20.04" }
}
""",
    )
    code, stdout, stderr = run_cli([wdl, override, "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    outputs = json.loads(stdout)["outputs"]
    if "cpu" in override:
        assert float(outputs["w.cpu"]) == 2.0
    else:
        assert outputs["w.image"] == "x:1"


SINGLE_TASK = """
version 1.0
task hello {
  input { String who = "world" }
  command <<< echo "hello ~{who} ${MSLS_PARITY_VAR:-unset}" >>>
  output { String msg = read_string(stdout()) }
}
"""


def test_a_document_of_one_task_runs_without_task(run_cli, tmp_path):
    wdl = write(tmp_path / "one.wdl", SINGLE_TASK)
    code, stdout, stderr = run_cli([wdl, "who=x", "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"hello.msg": "hello x unset"}


def test_several_tasks_and_no_workflow_want_task(run_cli, tmp_path):
    wdl = write(tmp_path / "two.wdl", SINGLE_TASK + SINGLE_TASK.replace("hello", "bye", 1)[13:])
    code, _, stderr = run_cli([wdl, "--dir", str(tmp_path / "runs")])
    assert code == 2
    assert "specify --task" in stderr  # miniwdl's own message: the CLI parses inputs first


def test_env_sets_and_passes_through(run_cli, tmp_path, monkeypatch):
    wdl = write(tmp_path / "one.wdl", SINGLE_TASK)
    monkeypatch.delenv("MSLS_PARITY_VAR", raising=False)
    code, stdout, stderr = run_cli([wdl, "--env", "MSLS_PARITY_VAR=set", "--dir", str(tmp_path)])
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"hello.msg": "hello world set"}
    code, stdout, stderr = run_cli([wdl, "--env", "MSLS_PARITY_VAR", "--dir", str(tmp_path)])
    assert code == 0, stderr
    assert "skipping pass-through of undefined MSLS_PARITY_VAR" in stderr


def test_no_outside_imports(run_cli, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "main").mkdir()
    write(
        tmp_path / "outside" / "lib.wdl",
        "version 1.0\ntask e { command <<< echo hi >>>\n"
        "  output { String s = read_string(stdout()) } }\n",
    )
    wdl = write(
        tmp_path / "main" / "imp.wdl",
        'version 1.0\nimport "../outside/lib.wdl" as lib\n'
        "workflow w { call lib.e  output { String s = e.s } }\n",
    )
    code, _, stderr = run_cli([wdl, "--no-outside-imports", "--dir", str(tmp_path / "runs")])
    assert code == 2
    assert "denied import from outside main WDL file's directory" in stderr
    code, stdout, stderr = run_cli([wdl, "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"w.s": "hi"}


MOCK = """
version 1.2
task t {
  command <<< echo ~{task.attempt} >>>
  output { Int attempt = read_int(stdout()) }
  requirements { preemptible: 2  max_retries: 1 }
}
"""


@pytest.mark.parametrize(("mocked", "attempt"), [(0, 0), (1, 1), (2, 2), (3, None), (9, None)])
def test_mock_interruptions_advance_task_attempt(run_cli, tmp_path, mocked, attempt):
    """miniwdl's hook: interruptions use up `preemptible`, then `max_retries`. As in miniwdl,
    one counted against `max_retries` is not counted as an interruption, so with 3 the 4th
    attempt is interrupted too and the call fails (miniwdl 1.16 fails the same way)."""
    wdl = write(tmp_path / "mock.wdl", MOCK)
    cfg = f"TASK_RUNTIME___MOCK_INTERRUPTIONS={mocked}"
    code, stdout, stderr = run_cli([wdl, "--cfg", cfg, "--dir", str(tmp_path / "runs")])
    if attempt is None:
        assert code == 2
        assert "terminated" in stderr
        run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.name != "_LAST")
        call = run_dir / "call-t"  # miniwdl's names: each try where it ran, none moved
        assert attempt_files(call) == [
            "command",
            *("stderr.txt", "stderr2.txt", "stderr3.txt", "stderr4.txt"),
            *("stdout.txt", "stdout2.txt", "stdout3.txt", "stdout4.txt"),
            *("work", "work2", "work3", "work4"),
        ]
        assert not list(call.glob("attempt-*"))
    else:
        assert code == 0, stderr
        assert json.loads(stdout)["outputs"] == {"t.attempt": attempt}


@pytest.mark.xdist_group("server")
def test_mock_interruptions_reach_jobs_in_motos_batch(aws_server, run_cli, tmp_path):
    """Once the embedded AWS serves HTTP, jobs go to moto's Batch, which keeps their tags in
    its tagger, not on the job: the interruption is played there too."""
    assert aws_server.batch_service is None  # Batch in moto
    wdl = write(tmp_path / "mock.wdl", MOCK)
    cfg = "TASK_RUNTIME___MOCK_INTERRUPTIONS=2"
    code, stdout, stderr = run_cli([wdl, "--cfg", cfg, "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"t.attempt": 2}


def test_mock_interruptions_spare_calls_that_are_not_preemptible(run_cli, tmp_path):
    wdl = write(tmp_path / "mock.wdl", MOCK.replace("preemptible: 2  ", ""))
    cfg = "TASK_RUNTIME___MOCK_INTERRUPTIONS=4"
    code, stdout, stderr = run_cli([wdl, "--cfg", cfg, "--dir", str(tmp_path / "runs")])
    assert code == 0, stderr
    assert json.loads(stdout)["outputs"] == {"t.attempt": 0}


FLAKY = """
version 1.1
task flaky {
  input { File data }
  command <<<
    echo try >> ../tries.log
    n=$(wc -l < ../tries.log)
    cat ~{data} > copy.txt
    echo "out $n" > "out $n.txt"
    mkdir -p sub && echo "sub $n" > sub/s.txt
    echo "stdout of try $n"
    echo "stderr of try $n" >&2
    [ "$n" -ge 2 ] || exit 1
  >>>
  output {
    String msg = read_string(glob("out*.txt")[0])
    File out = "out 2.txt"
    Array[File] subs = glob("sub/*.txt")
    File so = stdout()
    File se = stderr()
    File copy = "copy.txt"
    File same = data
  }
  runtime { maxRetries: 1 }
}
"""
ATTEMPT_FILE = re.compile(r"^(command|work[0-9]*|std(out|err)[0-9]*\.txt)$")


def attempt_files(call: Path) -> list[str]:
    """The names in a call directory that miniwdl gives each try's files."""
    return sorted(p.name for p in call.iterdir() if ATTEMPT_FILE.match(p.name))


def tree(work: Path) -> dict[str, str]:
    """A working directory's files and their text, the inputs' folder left out (stock miniwdl
    mounts the inputs in its container; the bare backend links them in the first try's)."""
    return {
        str(p.relative_to(work)): p.read_text()
        for p in sorted(work.rglob("*"))
        if p.is_file() and "_miniwdl_inputs" not in p.relative_to(work).parts
    }


def where(path: str, run_dir: Path, call: Path) -> tuple[str, str]:
    """An output: its out/ link (relative to the run directory) and what it resolves to
    (relative to the call directory, or the input's own path)."""
    real = os.path.realpath(path)
    inside = os.path.relpath(real, call) if real.startswith(str(call) + "/") else real
    return os.path.relpath(path, run_dir), inside


def test_a_retried_call_leaves_miniwdls_layout(run_cli, tmp_path):
    """A call failing its first try and succeeding its second: try 1's work/, stdout.txt and
    stderr.txt stay, try 2 runs in work2/ with stdout2.txt and stderr2.txt, one command
    file, and the outputs (and their out/ links) come from work2/: as stock `miniwdl run`."""
    wdl = write(tmp_path / "flaky.wdl", FLAKY)
    data = tmp_path / "data.txt"
    data.write_text("data\n")
    args = [wdl, f"data={data}", "--dir"]
    stock = subprocess.run(
        [sys.executable, "-m", "bench.miniwdl_bare", "run", *args, str(tmp_path / "stock")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert stock.returncode == 0, stock.stderr
    theirs = json.loads(stock.stdout)
    code, stdout, stderr = run_cli([*args, str(tmp_path / "ours")], cwd=str(tmp_path))
    assert code == 0, stderr
    ours = json.loads(stdout)
    their_call = Path(theirs["dir"])  # a task run: miniwdl's run directory is the call's
    our_call = Path(ours["dir"]) / "call-flaky"
    assert (
        attempt_files(our_call)
        == attempt_files(their_call)
        == [*("command", "stderr.txt", "stderr2.txt", "stdout.txt", "stdout2.txt", "work", "work2")]
    )
    for name in ("stdout.txt", "stderr.txt", "stdout2.txt", "stderr2.txt"):
        assert (our_call / name).read_text() == (their_call / name).read_text(), name
    assert (our_call / "stdout2.txt").read_text() == "stdout of try 2\n"
    for work in ("work", "work2"):
        assert tree(our_call / work) == tree(their_call / work), work
    assert tree(our_call / "work2")["out 2.txt"] == "out 2\n"
    # one command file, the second try's; its input is where that try's job finds it
    our_command, their_command = ((c / "command").read_text() for c in (our_call, their_call))
    assert f"{our_call}/work2/_miniwdl_inputs/0/data.txt" in our_command
    inputs = re.compile(r"\S*/_miniwdl_inputs/")
    assert inputs.sub("", our_command) == inputs.sub("", their_command)
    assert ours["outputs"]["flaky.msg"] == theirs["outputs"]["flaky.msg"] == "out 2"
    assert set(ours["outputs"]) == set(theirs["outputs"])
    for key, value in theirs["outputs"].items():
        if key == "flaky.msg":
            continue
        mine = ours["outputs"][key]
        pairs = zip(mine, value, strict=True) if isinstance(value, list) else [(mine, value)]
        for our_path, their_path in pairs:
            ours_at = where(our_path, Path(ours["dir"]), our_call)
            assert ours_at == where(their_path, their_call, their_call), key
    assert where(ours["outputs"]["flaky.out"], Path(ours["dir"]), our_call) == (
        "out/out/out 2.txt",
        "work2/out 2.txt",
    )
    recorded = json.loads((our_call / "outputs.json").read_text())
    assert recorded["flaky.so"] == str(our_call / "stdout2.txt")
    assert recorded["flaky.subs"] == [str(our_call / "work2" / "sub" / "s.txt")]
