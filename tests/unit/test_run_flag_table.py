"""Every `miniwdl run` flag is a flag of `miniwdl-serverless run` and has a row in the README's
table of them (parsed from both commands' --help)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OPTION_LINE = re.compile(r"^\s{2}(-[^\s,].*?)(?:\s{2,}|$)")


def help_flags(text: str) -> set[str]:
    """The flags in an argparse --help's option column (``-o OUT.json, --output ...``)."""
    flags = set()
    for line in text.splitlines():
        match = OPTION_LINE.match(line)
        if match:
            flags |= {part.split()[0] for part in match.group(1).split(", ")}
    return flags - {"-h", "--help"}


def help_of(*command: str) -> str:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:], "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


def readme_table_flags() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### `miniwdl run` flags", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {flag for row in rows for flag in re.findall(r"`(-[^`\s]+)", row.split(" | ")[0])}


def test_help_flags_reads_the_option_column():
    text = "options:\n  -h, --help  show\n  -o OUT.json           write\n  --cfg FILE\n"
    assert help_flags(text + "                  see --other in the text\n") == {"-o", "--cfg"}


def test_every_miniwdl_run_flag_is_ours_and_in_the_readme():
    theirs = help_flags(help_of("miniwdl", "run"))
    assert {"-j", "--json", "-o", "--cfg", "--no-quant-check", "-p"} <= theirs  # parsed
    ours = help_flags(help_of("miniwdl-serverless", "run"))
    assert sorted(theirs - ours) == [], "miniwdl run flags that miniwdl-serverless run lacks"
    table = readme_table_flags()
    assert sorted(theirs - table) == [], "miniwdl run flags missing from the README's table"
