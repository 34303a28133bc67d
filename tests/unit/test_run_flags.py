"""The pure parts of `run`'s miniwdl flags: -v's line splitting, where -o/--error-json put the
result, staged document paths mapped back to the user's, --runtime-defaults as a file."""

from __future__ import annotations

import json

import pytest

from miniwdl_serverless.cli import views
from miniwdl_serverless.cli.local_run import Output, split_lines
from miniwdl_serverless.cli.main import parse_run_args
from miniwdl_serverless.cli.submit import UsageError, run_config


def test_split_lines_keeps_the_unfinished_line():
    assert split_lines(b"", b"a\nb") == (["a"], b"b")
    assert split_lines(b"b", b"c\n") == (["bc"], b"")
    assert split_lines(b"", b"") == ([], b"")


def test_outputs_always_errors_only_when_asked(tmp_path, capsys):
    Output().result({"error": "RunFailed"})
    assert capsys.readouterr().out == ""
    Output(error_json=True, log_json=True).result({"error": "RunFailed"})
    assert capsys.readouterr().out == '{"error": "RunFailed"}\n'
    target = tmp_path / "o.json"
    Output(stdout_file=str(target)).result({"error": "RunFailed"})  # -o implies --error-json
    assert json.loads(target.read_text()) == {"error": "RunFailed"} and not capsys.readouterr().out
    Output().result({"outputs": {}})
    assert json.loads(capsys.readouterr().out) == {"outputs": {}}


def test_staged_paths_map_back_to_the_users_files():
    paths = views.staged_path_map(
        "abc.zip", {"main.wdl": "/home/me/main.wdl", "__outside_wdl/lib/t.wdl": "/srv/lib/t.wdl"}
    )
    info = {
        "message": "(/abc.zip/main.wdl Ln 3) bad; see /abc.zip/__outside_wdl/lib/t.wdl",
        "cause": {"pos": {"source": "/abc.zip/__outside_wdl/lib/t.wdl"}, "n": 1},
        "list": ["/abc.zip/main.wdl"],
    }
    assert views.unstaged(info, paths) == {
        "message": "(/home/me/main.wdl Ln 3) bad; see /srv/lib/t.wdl",
        "cause": {"pos": {"source": "/srv/lib/t.wdl"}, "n": 1},
        "list": ["/home/me/main.wdl"],
    }
    assert views.unstaged(info, {}) is info


def test_runtime_defaults_from_a_file_merge_over_the_cfg(tmp_path):
    defaults = tmp_path / "defaults.json"
    defaults.write_text('{"maxRetries": 2}')
    cfg = tmp_path / "a.cfg"
    cfg.write_text('[task_runtime]\ndefaults = {"docker": "ubuntu", "maxRetries": 0}\n')
    config = run_config([str(cfg)], {}, True, False, str(defaults))
    assert json.loads(config["TASK_RUNTIME__DEFAULTS"]) == {"docker": "ubuntu", "maxRetries": 2}
    with pytest.raises(UsageError, match="must be a JSON object"):
        run_config([], {}, True, False, "not json")


def test_run_parses_every_miniwdl_run_flag():
    args = parse_run_args(
        "x.wdl a=1 -j --error-json -o out.json -v --debug --no-color --log-json -p d1 --path d2 "
        "--cfg my.cfg --runtime-defaults {} --copy-input-files-for t --as-me "
        "--no-quant-check".split()
    )
    assert (args.json_only, args.error_json, args.stdout_file) == (True, True, "out.json")
    assert args.verbose and args.debug and args.no_color and args.log_json
    assert args.path == ["d1", "d2"] and args.cfg == ["my.cfg"]
    assert args.copy_input_files_for == ["t"] and args.as_me and args.no_quant_check
    assert args.inputs == ["a=1"]


def test_log_json_lines():
    import logging

    from miniwdl_serverless.cli.local_run import JsonLogFormatter

    record = logging.LogRecord(
        "miniwdl_serverless.x", logging.INFO, "f", 1, "hi %s", ("you",), None
    )
    line = json.loads(JsonLogFormatter().format(record))
    assert (line["level"], line["source"], line["message"]) == (
        "INFO",
        "miniwdl_serverless.x",
        "hi you",
    )


def test_cfg_files_parse_as_miniwdls_loader_parses_them(tmp_path):
    import logging

    import WDL.runtime.config

    cfg = tmp_path / "m.cfg"
    cfg.write_text(
        "[scheduler]\ncall_concurrency = 3\n[task_runtime]\n"
        'defaults = {"docker": "x%%y"}\nas_user = %(yes)s\nyes = true\n'
    )
    from miniwdl_serverless.cli.submit import read_cfg_file

    ours = read_cfg_file(str(cfg))
    theirs = WDL.runtime.config.Loader(logging.getLogger("t"), filenames=[str(cfg)])
    assert (
        ours["TASK_RUNTIME__DEFAULTS"] == theirs["task_runtime"]["defaults"] == '{"docker": "x%y"}'
    )
    assert ours["SCHEDULER__CALL_CONCURRENCY"] == theirs["scheduler"]["call_concurrency"] == "3"
    assert ours["TASK_RUNTIME__AS_USER"] == theirs["task_runtime"]["as_user"] == "true"
    cfg.write_text("[a]\nb = %(missing)s\n")
    with pytest.raises(UsageError, match="cannot read --cfg"):
        read_cfg_file(str(cfg))
