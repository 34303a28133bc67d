"""The parity check's quick mode (bench/parity.py): a subset of the corpus run by stock
`miniwdl run` (bench/miniwdl_bare.py, task commands by bash) and by `miniwdl-serverless run`,
each program's outcomes agreeing; and the comparison itself, on outcomes made up here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import parity

pytest.importorskip("WDL.CLI")  # stock miniwdl, installed with the dev extras


def test_every_corpus_program_has_a_workflow_and_the_quick_ones_exist():
    names = parity.programs()
    assert len(names) >= 40
    assert set(parity.QUICK) <= set(names)


@pytest.mark.slow
def test_the_quick_subset_agrees_with_miniwdl(tmp_path, capsys):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"other": {"kept": True}}))
    results = parity.main(["--quick", "--results", str(results_path)])
    written = json.loads(results_path.read_text())
    assert written["other"] == {"kept": True}
    assert written["parity"]["mode"] == "quick"
    assert written["parity"]["programs"] == len(parity.QUICK)
    disagreeing = [row for row in results["rows"] if not row["agree"]]
    assert not disagreeing, json.dumps(disagreeing, indent=1)
    kinds = {row["miniwdl"].split(" ", 2)[-1] for row in results["rows"]}
    assert "ok" in kinds and "InputError" in kinds  # successes and failures both compared
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"agree in {len(parity.QUICK)} of {len(parity.QUICK)}"


def outcome(code: int, result: object) -> parity.Outcome:
    return parity.Outcome(code=code, result=result, seconds=1.0, stderr_tail="")


@pytest.mark.parametrize(
    ("theirs", "ours", "agree"),
    [
        (outcome(0, {"w.x": 1}), outcome(0, {"w.x": 1}), True),
        (outcome(0, {"w.x": 1}), outcome(0, {"w.x": 2}), False),
        (outcome(0, {"w.x": 1}), outcome(2, "InputError"), False),
        (outcome(0, None), outcome(0, None), False),  # success printing no outputs: suspect
        (outcome(2, "InputError"), outcome(2, "InputError"), True),
        (outcome(2, "InputError"), outcome(2, "RunFailed<CommandFailed>"), False),
        (outcome(3, "RunFailed<CommandFailed>"), outcome(2, "RunFailed<CommandFailed>"), False),
    ],
)
def test_compare(theirs, ours, agree):
    assert parity.compare(theirs, ours)[0] is agree


def test_files_compare_by_basename_and_content_not_path(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, text in ((a, "same\n"), (b, "same\n")):
        (root / "run" / "out").mkdir(parents=True)
        (root / "run" / "out" / "f.txt").write_text(text)
    first = parity.normalise({"w.f": f"{a}/run/out/f.txt", "w.d": f"{a}/run"}, (a,))
    second = parity.normalise({"w.f": f"{b}/run/out/f.txt", "w.d": f"{b}/run"}, (b,))
    assert first == second
    (b / "run" / "out" / "f.txt").write_text("different\n")
    assert parity.normalise({"w.f": f"{b}/run/out/f.txt"}, (b,)) != {"w.f": first["w.f"]}
    assert parity.normalise({"w.s": "/etc/hostname"}, (a,)) == {"w.s": "/etc/hostname"}


@pytest.mark.parametrize(
    "args, says",
    [
        (["no_such_program"], "no program no_such_program in"),
        (["--corpus", "/nonexistent"], "--corpus /nonexistent: no such directory"),
    ],
)
def test_a_bad_program_or_corpus_is_a_usage_error(args, says, capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        parity.main([*args, "--results", str(tmp_path / "r.json")])
    assert exited.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
