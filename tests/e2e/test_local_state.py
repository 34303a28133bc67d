"""`miniwdl-serverless run` keeps its state between invocations (issue 10): a later run, and
`status`/`list`, see the earlier runs' records; two runs at once both keep theirs; a failed run
is kept; every table of the embedded AWS is kept, whatever its name. Each `run` is the real CLI
in its own process, on the state directory the conftest gives each test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from miniwdl_serverless.local.state import StateDir

CLI = str(Path(sys.executable).parent / "miniwdl-serverless")
ROOT = Path(__file__).resolve().parents[2]
HELLO = """
version 1.0
workflow hello {
  input { String who  Int n = 2  Boolean fail = false }
  scatter (i in range(n)) { call greet { input: who = who, i = i, fail = fail } }
  output { Array[String] lines = greet.line }
}
task greet {
  input { String who  Int i  Boolean fail }
  command <<< echo "hello ~{who} ~{i}"; if ~{true="true" false="false" fail}; then exit 7; fi >>>
  output { String line = read_string(stdout()) }
}
"""


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without a stack (and without AWS's variables)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MINIWDL__"))
        and k not in ("MINIWDL_SERVERLESS_STACK", "MINIWDL_SERVERLESS_STATE_MACHINE")
    }
    env.update(extra)
    return env


def start_run(tmp_path: Path, *inputs: str) -> subprocess.Popen[str]:
    command = [CLI, "run", str(tmp_path / "hello.wdl"), *inputs, "--dir", str(tmp_path / "runs")]
    return subprocess.Popen(
        [*command, "--no-progress"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=180)
    return process.returncode, stdout, stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=environment(), capture_output=True, text=True, timeout=60
    )


def test_local_runs_are_kept_and_shown_by_status_and_list(tmp_path, local_state_dir):
    (tmp_path / "hello.wdl").write_text(HELLO)
    code, first, stderr = finish(start_run(tmp_path, "who=first"))
    assert code == 0, stderr
    assert StateDir(local_state_dir).exists()
    # two more at once, one of them failing: neither loses the other's (or the first's) records
    second = start_run(tmp_path, "who=second", "n=3")
    failing = start_run(tmp_path, "who=bad", "n=1", "fail=true")
    (second_code, _, second_err), (failing_code, _, failing_err) = finish(second), finish(failing)
    assert second_code == 0, second_err
    assert failing_code == 7, failing_err

    listed = cli("list", "--local", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["status"] for r in runs].count("SUCCEEDED") == 2
    assert [r["status"] for r in runs].count("FAILED") == 1
    started = [r["started"] for r in runs]
    assert started == sorted(started, reverse=True)  # newest first, as on AWS
    oldest = runs[-1]["run_id"]

    report = json.loads(cli("status", "--local", oldest, "--json").stdout)
    assert report["status"] == "SUCCEEDED" and report["workflow"] == "hello"
    assert report["dir"] == json.loads(first)["dir"]
    assert [c["call"] for c in report["calls"]] == ["call-greet-0", "call-greet-1"]
    assert {c["status"] for c in report["calls"]} == {"succeeded"}
    (failed,) = [r for r in runs if r["status"] == "FAILED"]
    failed_report = json.loads(cli("status", failed["run_id"], "--json", "--local").stdout)
    assert failed_report["run_status"] == "failed" and failed_report["error"]

    # without --local, and with no stack anywhere, the local runs are what there is
    implicit = cli("list")
    assert implicit.returncode == 0, implicit.stderr
    assert "no stack given: local runs in" in implicit.stderr
    assert implicit.stdout.startswith("RUN") and oldest in implicit.stdout
    table = cli("status", oldest)
    assert f"run {oldest}: SUCCEEDED" in table.stdout and "call-greet-1" in table.stdout
    assert cli("list", "--local", "--status", "FAILED", "--json").stdout.count("run_id") == 1


EXTRA = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import boto3
    from miniwdl_serverless.core.records import Run
    from miniwdl_serverless.local.embedded import EmbeddedAWS
    from miniwdl_serverless.local.state import StateDir

    step = sys.argv[2]
    with EmbeddedAWS(state=StateDir(Path(sys.argv[1]))) as aws:
        dynamodb = boto3.client("dynamodb")
        if step == "write":  # a table template.yaml does not declare, made by this process
            dynamodb.create_table(
                TableName="local-Extra",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            for n in range(3):
                dynamodb.put_item(TableName="local-Extra", Item={"pk": {"S": f"k{n}"}})
            dynamodb.put_item(
                TableName="local-Extra",
                Item={"pk": {"S": "gone"}, "expires_at": {"N": str(int(time.time()) - 1)}},
            )
            aws.store.create_run(Run("r-extra"))
            found = []
        else:
            found = sorted(
                i["pk"]["S"] for i in dynamodb.scan(TableName="local-Extra")["Items"]
            )
        print(json.dumps({
            "items": found,
            "run": aws.store.get_run("r-extra") is not None,
            "download_cache": os.environ.get("MINIWDL__DOWNLOAD_CACHE__DIR"),
        }))
    """
)


def embedded(state: Path, step: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", EXTRA, str(state), step],
        env=environment(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_every_table_of_the_embedded_aws_is_kept(tmp_path):
    state = tmp_path / "state"
    written = embedded(state, "write")
    assert written["download_cache"] == str(state / "downloads")
    read = embedded(state, "read", MINIWDL__DOWNLOAD_CACHE__DIR=str(tmp_path / "mine"))
    assert read["items"] == ["k0", "k1", "k2"]  # the expired item is not
    assert read["run"]  # and the template's tables are kept beside it
    assert read["download_cache"] == str(tmp_path / "mine")  # the user's setting wins
