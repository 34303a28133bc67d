"""Parity with stock `miniwdl run`: every program of a corpus through both tools, compared.

Each program of ``bench/parity_corpus/`` is a directory with ``workflow.wdl``, an optional
``inputs.json`` and an optional ``args.txt`` (more command-line arguments, split as a shell
splits them; ``{dir}`` in it or in ``inputs.json`` stands for the program's own directory, for
absolute paths). Each program is copied into a fresh temporary directory for each tool and run
there, with the same arguments, by `python -m bench.miniwdl_bare run` (stock miniwdl, task
commands by bash on the host) and by `miniwdl-serverless run` (local mode, its own state
directory). Both are given ``--error-json``, so each prints a JSON object on stdout either way.

The two agree when both succeed with the same outputs (a File or Directory is compared by its
basename and the digest of its content, not its path), or both fail with the same exit status
and the same error class (with its cause's, e.g. ``RunFailed`` caused by ``CommandFailed``).
Programs on which they differ by design are listed in ``KNOWN`` with the reason, and marked
so in the table; they still count as disagreeing. Prints a table and ``agree in X of N``, and
merges the figures into bench/results.json under "parity". At most two runs go at a time.

    .venv/bin/python -m bench.parity [--quick] [--results FILE] [PROGRAM ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import results_file

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "parity_corpus"
BIN = Path(sys.executable).parent
TOOLS = ("miniwdl", "ours")
TIMEOUT = 300  # seconds a run may take
QUICK = (  # the quick mode's subset: one of each kind
    "task_stdout",
    "single_task_no_flag",
    "missing_required_input",
    "nonzero_exit",
    "scatter_simple",
    "file_output_created",
    "subworkflow_import",
    "directory_input",
)
KNOWN = {  # programs on which the two differ by design: the reason
    "inputs_after_options": "ours takes key=value inputs after options (miniwdl's argparse"
    " stops collecting them at the first option after the WDL file: a usage error)",
    "inline_json_malformed": "`-i` with malformed inline JSON: both fail with ParserError, but"
    " miniwdl 1.16 lets the YAML parser's exception escape (a traceback, exit 1); ours exits 2"
    " as for any other input error",
}
PASS_THROUGH = {"PARITY_PASS": "passed through"}  # for `--env NAME` programs


@dataclass(frozen=True)
class Outcome:
    """What one tool did with one program."""

    code: int
    result: Any  # success: the outputs normalised; failure: the error class (and its cause's)
    seconds: float
    stderr_tail: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def summary(self) -> str:
        if self.ok:
            return "ok"
        return f"exit {self.code} {self.result}"


def programs(corpus: Path = CORPUS) -> list[str]:
    return sorted(p.name for p in corpus.iterdir() if (p / "workflow.wdl").is_file())


def arguments(program: Path) -> list[str]:
    """The command line's arguments after `run`, ``{dir}`` standing for the program's copy."""
    argv = ["workflow.wdl"]
    if (program / "inputs.json").is_file():
        argv += ["-i", "inputs.json"]
    if (program / "args.txt").is_file():
        argv += shlex.split((program / "args.txt").read_text().replace("{dir}", str(program)))
    return argv


def command(tool: str, work: Path) -> list[str]:
    if tool == "miniwdl":
        return [sys.executable, "-m", "bench.miniwdl_bare", "run", "--dir", f"{work}/runs/"]
    return [
        str(BIN / "miniwdl-serverless"),
        "run",
        "--dir",
        str(work / "runs"),
        "--state-dir",
        str(work / "state"),
        "--no-progress",
    ]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def normalise(value: Any, roots: tuple[Path, ...]) -> Any:
    """Outputs with each path under ``roots`` (a File's or a Directory's) replaced by its
    basename and content: the two tools put their files in different places."""
    if isinstance(value, dict):
        return {key: normalise(item, roots) for key, item in value.items()}
    if isinstance(value, list):
        return [normalise(item, roots) for item in value]
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        resolved = path.resolve()
        if any(resolved.is_relative_to(root) for root in roots) and resolved.exists():
            if resolved.is_dir():
                files = {
                    str(f.relative_to(resolved)): digest(f)
                    for f in sorted(resolved.rglob("*"))
                    if f.is_file()
                }
                return {"Directory": path.name, "files": files}
            return {"File": path.name, "sha256": digest(resolved)}
    return value


def error_class(error: dict[str, Any]) -> str:
    name = str(error.get("error", "?"))
    cause = error.get("cause")
    if isinstance(cause, dict) and cause.get("error"):
        name += f"<{cause['error']}>"
    return name


def run_one(program: str, tool: str, corpus: Path = CORPUS) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"msls-parity-{tool}-") as directory:
        work = Path(directory).resolve()
        copy = work / "program"
        shutil.copytree(corpus / program, copy)
        inputs = copy / "inputs.json"
        if inputs.is_file():
            inputs.write_text(inputs.read_text().replace("{dir}", str(copy)))
        argv = [*command(tool, work), *arguments(copy), "--error-json"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), **PASS_THROUGH}
        started = time.perf_counter()
        try:
            done = subprocess.run(
                argv, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT
            )
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        except subprocess.TimeoutExpired:
            code, stdout, stderr = -1, "", "timed out"
        seconds = time.perf_counter() - started
        try:
            printed = json.loads(stdout)
        except ValueError:
            printed = {}
        if code == 0:
            result: Any = normalise(printed.get("outputs"), (work,))
        else:
            result = error_class(printed) if isinstance(printed, dict) else "?"
        return Outcome(code, result, seconds, stderr[-1500:])


def compare(miniwdl: Outcome, ours: Outcome) -> tuple[bool, str]:
    """Whether they agree, and if not, how they differ."""
    if miniwdl.ok != ours.ok:
        return False, "one succeeded, the other failed"
    if miniwdl.ok:
        if not (isinstance(miniwdl.result, dict) and isinstance(ours.result, dict)):
            return False, "no outputs printed"
        if miniwdl.result == ours.result:
            return True, ""
        return False, "outputs differ"
    if miniwdl.code != ours.code:
        return False, "exit statuses differ"
    if miniwdl.result != ours.result:
        return False, "error classes differ"
    return True, ""


def measure(names: list[str], corpus: Path = CORPUS) -> dict[str, Any]:
    jobs = [(name, tool) for name in names for tool in TOOLS]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda job: run_one(job[0], job[1], corpus), jobs)
        outcomes = dict(zip(jobs, done, strict=True))
    rows = []
    for name in names:
        theirs, ours = outcomes[(name, "miniwdl")], outcomes[(name, "ours")]
        agree, why = compare(theirs, ours)
        rows.append(
            {
                "program": name,
                "miniwdl": theirs.summary(),
                "ours": ours.summary(),
                "agree": agree,
                "why": why,
                **({"known": KNOWN[name]} if name in KNOWN and not agree else {}),
                "seconds": {"miniwdl": round(theirs.seconds, 2), "ours": round(ours.seconds, 2)},
                **({} if agree else {"detail": {"miniwdl": asdict(theirs), "ours": asdict(ours)}}),
            }
        )
    return {
        "programs": len(rows),
        "agree": sum(row["agree"] for row in rows),
        "rows": rows,
    }


def table(results: dict[str, Any]) -> str:
    width = max([len("program"), *(len(row["program"]) for row in results["rows"])])
    lines = [f"{'program':<{width}}  {'miniwdl':<28} {'ours':<28} agree?"]
    for row in results["rows"]:
        mark = "yes" if row["agree"] else f"NO ({row['why']})"
        if not row["agree"] and row["program"] in KNOWN:
            mark += " known difference"
        lines.append(f"{row['program']:<{width}}  {row['miniwdl']:<28} {row['ours']:<28} {mark}")
    lines.append(f"agree in {results['agree']} of {results['programs']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"the {len(QUICK)}-program subset")
    parser.add_argument("--results", type=Path, default=results_file.RESULTS)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("program", nargs="*", help="only these programs (not merged)")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        parser.error(f"--corpus {args.corpus}: no such directory")
    unknown = [name for name in args.program if not (args.corpus / name / "workflow.wdl").is_file()]
    if unknown:
        parser.error(f"no program {', '.join(unknown)} in {args.corpus} (a workflow.wdl in each)")
    names = args.program or (list(QUICK) if args.quick else programs(args.corpus))
    results = {"mode": "quick" if args.quick else "full", **measure(names, args.corpus)}
    print(table(results))
    if not args.program:
        results_file.merge("parity", results, args.results)
    return results


if __name__ == "__main__":
    main()
