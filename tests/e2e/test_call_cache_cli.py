"""The call cache across `miniwdl-serverless run` invocations (the real CLI in its own process,
on the state directory the conftest gives each test): a second run of the same workflow reuses
the first one's calls (their stamps prove it, and it submits no Batch job for them); `--resume
DIR` reruns a failed run and runs only the failed call; `--no-cache` reuses nothing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.e2e.test_local_state import CLI, environment

PIPELINE = """
version 1.0
workflow pipe {
  input { String flag }
  scatter (i in range(3)) { call stamp { input: i = i } }
  call check { input: flag = flag, stamps = stamp.out }
  output { Array[String] stamps = stamp.out  String checked = check.out }
}
task stamp {
  input { Int i }
  command <<< echo "~{i} $(date +%s%N)" >>>
  output { String out = read_string(stdout()) }
}
task check {
  input { String flag  Array[String] stamps }
  command <<< if [ -e ~{flag} ]; then echo "flag set" >&2; exit 4; fi; echo ok >>>
  output { String out = read_string(stdout()) }
}
"""


def run(tmp_path: Path, *args: str, root: str = "runs") -> tuple[int, dict, str]:
    result = subprocess.run(
        [CLI, "run", *args, "--dir", str(tmp_path / root), "--no-progress"],
        # the check task reads a host path of the test's (the flag), which bubblewrap hides
        env=environment(MINIWDL_SERVERLESS_SANDBOX="none"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(result.stdout) if result.returncode == 0 else {}
    return result.returncode, report, result.stderr


def test_a_second_local_run_reuses_the_first_ones_calls(tmp_path):
    (tmp_path / "pipe.wdl").write_text(PIPELINE)
    flag = str(tmp_path / "absent")
    code, first, err = run(tmp_path, str(tmp_path / "pipe.wdl"), f"flag={flag}")
    assert code == 0, err
    code, second, err = run(tmp_path, str(tmp_path / "pipe.wdl"), f"flag={flag}")
    assert code == 0, err
    assert second["outputs"] == first["outputs"]  # the same stamps: nothing ran again
    log = (Path(second["dir"]) / "workflow.log").read_text()
    assert log.count("call cache hit") == 4 and "submitted" not in log
    code, third, err = run(tmp_path, str(tmp_path / "pipe.wdl"), f"flag={flag}", "--no-cache")
    assert code == 0, err
    assert third["outputs"]["pipe.stamps"] != first["outputs"]["pipe.stamps"]


def test_resume_reruns_only_the_failed_call(tmp_path):
    (tmp_path / "pipe.wdl").write_text(PIPELINE)
    flag = tmp_path / "flag"
    flag.write_text("")
    code, _, err = run(tmp_path, str(tmp_path / "pipe.wdl"), f"flag={flag}")
    assert code == 4, err
    failed_dir = json.loads(err[err.index("{") : err.rindex("}") + 1])["dir"]
    stamps = [
        (Path(failed_dir) / f"call-stamp-{i}" / "stdout.txt").read_text().strip() for i in range(3)
    ]
    flag.unlink()  # what made it fail is fixed
    code, resumed, err = run(tmp_path, "--resume", failed_dir)
    assert code == 0, err
    assert resumed["outputs"]["pipe.stamps"] == stamps  # reused, not run again
    assert resumed["outputs"]["pipe.checked"] == "ok"
    assert Path(resumed["dir"]).parent == Path(failed_dir).parent
    log = (Path(resumed["dir"]) / "workflow.log").read_text()
    assert log.count("call cache hit") == 3 and "submitting call-check attempt 1" in log


def test_resume_of_an_unknown_directory_says_so(tmp_path):
    code, _, err = run(tmp_path, "--resume", str(tmp_path))
    assert code == 2 and "no local run in" in err


def test_resume_with_a_workflow_or_run_without_one_is_refused(tmp_path):
    (tmp_path / "pipe.wdl").write_text(PIPELINE)
    code, _, err = run(tmp_path, str(tmp_path / "pipe.wdl"), "--resume", str(tmp_path))
    assert code == 2 and "--resume reruns the run's own workflow and inputs" in err
    code, _, err = run(tmp_path)
    assert code == 2 and "give the WORKFLOW to run (or --resume DIR)" in err


FILES = """
version 1.0
workflow files {
  call make
  File made = make.out
  output { String text = read_string(made) }
}
task make {
  command <<< echo made > out.txt >>>
  output { File out = "out.txt" }
}
"""


def test_a_run_in_another_directory_does_not_take_outputs_from_outside_its_own(tmp_path):
    """A hit's files live in the earlier run's directory: under another --dir root the run
    may not name them (miniwdl's rule for files a workflow was not given), so the call runs
    again there rather than the run failing on them."""
    (tmp_path / "files.wdl").write_text(FILES)
    wdl = str(tmp_path / "files.wdl")
    code, first, err = run(tmp_path, wdl)
    assert code == 0, err
    code, second, err = run(tmp_path, wdl, root="elsewhere")
    assert code == 0, err
    assert second["outputs"] == {"files.text": "made"}
    log = (Path(second["dir"]) / "workflow.log").read_text()
    assert "call cache hit" not in log and "outside this run's root" in log
    # the entry now names the second run's call (one entry a key): under its root, a hit
    code, third, err = run(tmp_path, wdl, root="elsewhere")
    assert code == 0, err
    assert "call cache hit" in (Path(third["dir"]) / "workflow.log").read_text()
