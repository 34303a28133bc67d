"""`miniwdl-serverless run` takes `miniwdl run`'s flags with their meaning: -j, -o,
--error-json, -v, --debug, -p, --cfg FILE, --runtime-defaults; bad documents and inputs end
before the embedded AWS is started, with miniwdl's exit status and message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from miniwdl_serverless.cli import main
from miniwdl_serverless.local import batch_executor
from miniwdl_serverless.local.embedded import EmbeddedAWS

HELLO = """
version 1.0
workflow hello {
  input { String who  File? f }
  call greet { input: who = who }
  output { String line = greet.line }
}
task greet {
  input { String who }
  command <<< echo "hello ~{who}"; echo "greeting ~{who}" >&2 >>>
  output { String line = read_string(stdout()) }
}
"""
TWO_TASKS = """
version 1.0
task a { command <<< echo a >>> }
task b { command <<< echo b >>> }
"""
SYNTAX = """
version 1.0
workflow w {
  call t { input: x = }
}
"""
FAIL = """
version 1.0
task fail {
  command <<< echo "oops" >&2; exit 7 >>>
}
"""


@pytest.fixture
def no_aws(monkeypatch):
    """The embedded AWS must not be entered (its __enter__ fails the test if it is), nor a
    container engine asked whether it works."""
    entered = []

    def enter(self):
        entered.append(self)
        raise AssertionError("the embedded AWS was started")

    def probe(*_args):
        entered.append("container engine")
        raise AssertionError("a container engine was probed")

    monkeypatch.setattr(EmbeddedAWS, "__enter__", enter)
    monkeypatch.setattr(batch_executor, "container_engine", probe)  # nor `docker info` run
    return entered


def cli(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main.main(["run", "--no-state", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_only_prints_the_inputs_and_starts_nothing(tmp_path, capsys, no_aws):
    wdl = tmp_path / "hello.wdl"
    wdl.write_text(HELLO)
    code, out, _ = cli(capsys, str(wdl), "who=you", "-j")
    assert code == 0 and not no_aws
    assert json.loads(out) == {"hello.who": "you"}


@pytest.mark.parametrize(
    ("source", "args", "message"),
    [
        (TWO_TASKS, [], "--task"),  # several tasks, no workflow, no --task
        (HELLO, [], "missing required inputs"),
        (HELLO, ["who=x", "f=/no/such/file"], "/no/such/file"),
        (SYNTAX, [], "doc.wdl:4:23: "),
    ],
    ids=["no-target", "missing-input", "bad-input-file", "syntax"],
)
def test_bad_documents_and_inputs_fail_before_the_embedded_aws(
    tmp_path, capsys, no_aws, source, args, message
):
    wdl = tmp_path / "doc.wdl"
    wdl.write_text(source)
    code, out, err = cli(capsys, str(wdl), *args)
    assert code == 2 and not no_aws  # miniwdl run's exit status for these
    assert out == ""
    assert message in err


def test_a_wdl_error_shows_the_source_line_and_a_caret(tmp_path, capsys, no_aws):
    wdl = tmp_path / "doc.wdl"
    wdl.write_text(SYNTAX)
    code, _, err = cli(capsys, str(wdl))
    lines = err.splitlines()
    assert code == 2
    at = lines.index("      call t { input: x = }")
    assert lines[at + 1].strip() == "^" and lines[at + 1].index("^") == len(
        "      call t { input: x = "
    )


def test_an_imported_documents_error_shows_its_excerpt(tmp_path, capsys, no_aws):
    (tmp_path / "broken.wdl").write_text(SYNTAX)
    wdl = tmp_path / "main.wdl"
    wdl.write_text('version 1.0\nimport "broken.wdl"\nworkflow m {}\n')
    code, _, err = cli(capsys, str(wdl))
    assert code == 2 and "ImportError" in err
    assert "      call t { input: x = }" in err.splitlines()


def test_error_json_and_out_file_on_a_bad_input(tmp_path, capsys, no_aws):
    wdl = tmp_path / "hello.wdl"
    wdl.write_text(HELLO)
    code, out, _ = cli(capsys, str(wdl), "--error-json")
    assert code == 2 and json.loads(out)["error"] == "InputError"
    target = tmp_path / "out.json"
    code, out, _ = cli(capsys, str(wdl), "-o", str(target))
    assert code == 2 and out == "" and json.loads(target.read_text())["error"] == "InputError"


def test_debug_adds_the_traceback(tmp_path, capsys, no_aws):
    wdl = tmp_path / "hello.wdl"
    wdl.write_text(HELLO)
    assert "Traceback" not in cli(capsys, str(wdl))[2]
    assert "Traceback (most recent call last)" in cli(capsys, str(wdl), "--debug")[2]


def test_version_names_ours_and_miniwdl(capsys):
    from importlib.metadata import version

    assert main.main(["--version"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == (
        f"miniwdl-serverless {version('miniwdl-serverless')} (miniwdl {version('miniwdl')})"
    )


def test_out_file_gets_the_outputs_and_verbose_streams_stderr(run_cli, tmp_path):
    wdl = tmp_path / "hello.wdl"
    wdl.write_text(HELLO)
    target = tmp_path / "out.json"
    code, out, err = run_cli(
        [str(wdl), "who=you", "-o", str(target), "-v", "--dir", str(tmp_path)], cwd=str(tmp_path)
    )
    assert code == 0, err
    assert out == ""
    assert json.loads(target.read_text())["outputs"] == {"hello.line": "hello you"}
    assert "[call-greet] greeting you" in err.splitlines()


def test_error_json_on_a_failed_task(run_cli, tmp_path):
    wdl = tmp_path / "fail.wdl"
    wdl.write_text(FAIL)
    code, out, err = run_cli([str(wdl), "--error-json", "--dir", str(tmp_path)], cwd=str(tmp_path))
    assert code == 7
    error = json.loads(out)
    assert error["error"] == "RunFailed" and error["cause"]["exit_status"] == 7
    assert "[call-fail]" not in err  # stderr streamed only with -v


def test_path_finds_imports_and_errors_name_the_users_files(run_cli, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "tasks.wdl").write_text(
        FAIL.replace("exit 7", 'echo "~{n}"; exit 7').replace(
            "task fail {", "task fail {\n  input { Int n = 1 }"
        )
    )
    main_dir = tmp_path / "main"
    main_dir.mkdir()
    (main_dir / "flow.wdl").write_text(
        'version 1.0\nimport "tasks.wdl" as lib\nworkflow flow {\n  call lib.fail\n}\n'
    )
    code, _, err = run_cli(
        [str(main_dir / "flow.wdl"), "-p", str(lib), "--dir", str(tmp_path)], cwd=str(main_dir)
    )
    assert code == 7, err
    error = json.loads(err[: err.rindex("}") + 1])
    assert ".zip/" not in err
    assert error["cause"]["pos"]["source"] == str(lib / "tasks.wdl")
    assert "  task fail (tasks.wdl Ln 3 Col 1) failed with exit status 7" in err.splitlines()


def test_cfg_file_and_runtime_defaults_reach_the_run(run_cli, tmp_path):
    """[task_runtime] defaults from a .cfg file: maxRetries lets a task that fails once pass."""
    wdl = tmp_path / "flaky.wdl"
    marker = tmp_path / "tried"
    wdl.write_text(
        "version 1.0\ntask flaky {\n  command <<< "
        f"if [ -e {marker} ]; then echo ok; else touch {marker}; exit 1; fi >>>\n"
        "  output { String s = read_string(stdout()) }\n}\n"
    )
    cfg = tmp_path / "my.cfg"
    cfg.write_text('[task_runtime]\ndefaults = {"maxRetries": 1}\n')
    code, out, err = run_cli([str(wdl), "--cfg", str(cfg), "--dir", str(tmp_path)])
    assert code == 0, err
    assert json.loads(out)["outputs"] == {"flaky.s": "ok"}
    marker.unlink()
    code, _, err = run_cli(
        [
            str(wdl),
            "--cfg",
            str(cfg),
            "--runtime-defaults",
            '{"maxRetries": 0}',
            "--dir",
            str(tmp_path),
        ]
    )
    assert code == 1, err  # --runtime-defaults wins over the file, as in miniwdl


def test_cfg_key_value_still_works(tmp_path):
    from miniwdl_serverless.cli import local_run

    wdl = tmp_path / "hello.wdl"
    wdl.write_text(HELLO)
    args = main.parse_run_args([str(wdl), "who=x", "--cfg", "task_runtime__as_user=false"])
    data = local_run.build_execution_input(args, str(tmp_path))
    assert data["config"]["TASK_RUNTIME__AS_USER"] == "false"
    assert Path(data["workflow"]) == wdl


def test_a_packaged_document_is_kept_in_the_state_directory(tmp_path, capsys, no_aws):
    """-p: the zip the controller loads stays in the state directory's workflows/ (--resume
    loads it again); -j packages nothing."""
    from miniwdl_serverless.cli import local_run

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "tasks.wdl").write_text(FAIL)
    wdl = tmp_path / "flow.wdl"
    wdl.write_text('version 1.0\nimport "tasks.wdl" as lib\nworkflow flow {\n  call lib.fail\n}\n')
    state = tmp_path / "state"
    capsys.readouterr()
    code = main.main(["run", "--state-dir", str(state), str(wdl), "-p", str(lib), "-j"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out) == {} and not state.exists()
    args = main.parse_run_args(["--state-dir", str(state), str(wdl), "-p", str(lib)])
    with local_run._scratch(local_run.state_dir(args)) as scratch:
        data = local_run.build_execution_input(args, scratch)
    archive = Path(data["workflow"])
    assert archive.name == "flow.wdl.zip" and archive.parent.parent == state / "workflows"
    assert archive.is_file()
    assert data["user_paths"][f"/{archive.name}/lib/tasks.wdl"] == str(lib / "tasks.wdl")
