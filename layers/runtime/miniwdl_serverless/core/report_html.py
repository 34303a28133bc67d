"""A run report (core/run_report.py) as one self-contained HTML page: inline CSS and an inline
SVG gantt, no script, nothing fetched. Pure: a Report in, a string out. Every string that comes
from the run (call names, messages, stderr, paths, images) goes through ``esc``."""

from __future__ import annotations

import html
from datetime import datetime, timezone

from miniwdl_serverless.core.run_report import (
    CACHED,
    FAILED,
    QUEUED,
    RETRIED,
    RUNNING,
    STOPPED,
    SUCCEEDED,
    WAITING,
    Attempt,
    CallRow,
    Report,
)

# The gantt's colours, one per attempt outcome (the tests look for them in a screenshot).
COLOURS = {
    SUCCEEDED: "#2e7d32",
    FAILED: "#c62828",
    RETRIED: "#ef6c00",
    CACHED: "#1565c0",
    STOPPED: "#757575",
    RUNNING: "#00897b",
    QUEUED: "#b0bec5",  # the queued part of every attempt: submitted, not yet running
    WAITING: "#e0e0e0",
}
MAX_ROWS = 2000  # calls drawn and listed; a wider run says how many more there are
ROW_HEIGHT, LABEL_WIDTH, CHART_WIDTH, AXIS_HEIGHT = 18, 300, 860, 24
STDERR_TAIL_CHARS = 4000

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #212121; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.meta { color: #555; } .meta span { margin-right: 16px; }
.badge { display: inline-block; padding: 2px 8px; border-radius: 4px; color: #fff; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #eee;
  text-align: left; white-space: nowrap; } td.num, th.num { text-align: right; }
.failure { border-left: 4px solid #c62828; background: #fdecea; padding: 8px 12px; }
pre { background: #263238; color: #eceff1; padding: 8px; overflow-x: auto; max-height: 320px; }
.legend span { margin-right: 12px; } .swatch { display: inline-block; width: 12px;
  height: 12px; vertical-align: middle; margin-right: 4px; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""


def esc(value: object) -> str:
    """Text and attribute values alike (quotes too)."""
    return html.escape("" if value is None else str(value), quote=True)


def render(report: Report) -> str:
    rows = list(report.calls[:MAX_ROWS])
    hidden = len(report.calls) - len(rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(report.workflow or report.run_id)} — run report</title>",
        f"<style>{CSS}</style></head><body>",
        _header(report),
        _failure(report),
        "<h2>Timeline</h2>",
        _legend(),
        gantt(rows, report.started_at, report.ended_at or report.generated_at),
        _hidden(hidden),
        "<h2>Calls</h2>",
        _calls_table(rows),
        _hidden(hidden),
        "<h2>Orchestration cost (estimate)</h2>",
        _cost(report),
        f'<p class="meta">generated {esc(_when(report.generated_at))} from '
        f"{esc(report.source)}</p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


def _header(report: Report) -> str:
    colour = COLOURS.get(report.status, COLOURS[RUNNING])
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts().items()))
    meta = [
        ("run", report.run_id),
        ("directory", report.run_dir),
        ("started", _when(report.started_at)),
        ("ended", _when(report.ended_at)),
        ("wall time", duration(report.wall_seconds)),
        ("calls", f"{len(report.calls)} ({counts})" if counts else "0"),
    ]
    spans = "".join(
        f"<span>{esc(name)}: <b>{esc(value)}</b></span>" for name, value in meta if value
    )
    return (
        f"<h1>{esc(report.workflow or 'run')} "
        f'<span class="badge" style="background:{colour}">{esc(report.status)}</span></h1>'
        f'<p class="meta">{spans}</p>'
    )


def _failure(report: Report) -> str:
    failure = report.failure
    if failure is None:
        return ""
    lines = [f"<b>{esc(failure.error)}</b>: {esc(failure.message)}"]
    if failure.call:
        status = f", exit status {failure.exit_status}" if failure.exit_status is not None else ""
        lines.append(f"call <b>{esc(failure.call)}</b>{esc(status)}")
    tail = ""
    if failure.stderr_tail:
        text = failure.stderr_tail[-STDERR_TAIL_CHARS:]
        where = f" ({esc(failure.stderr_file)})" if failure.stderr_file else ""
        tail = f"<p>last lines of its stderr{where}:</p><pre>{esc(text)}</pre>"
    body = "<br>".join(lines)
    return f'<h2>Failure</h2><div class="failure" id="failure">{body}{tail}</div>'


def _legend() -> str:
    names = (QUEUED, RUNNING, SUCCEEDED, RETRIED, FAILED, CACHED, STOPPED)
    items = "".join(
        f'<span><i class="swatch" style="background:{COLOURS[n]}"></i>{esc(n)}</span>'
        for n in names
    )
    return f'<p class="legend">{items}</p>'


def gantt(rows: list[CallRow], start: float | None, end: float | None) -> str:
    """One row per call, one bar per attempt: its queued part, then its running part in the
    colour of how it ended."""
    times = [t for r in rows for t in (r.first_at, r.last_at) if t is not None]
    origin = min([start, *times] if start is not None else times, default=0.0)
    finish = max([end, *times] if end is not None else times, default=origin)
    span = max(finish - origin, 1e-3)
    scale = CHART_WIDTH / span
    height = AXIS_HEIGHT + ROW_HEIGHT * max(1, len(rows))
    width = LABEL_WIDTH + CHART_WIDTH + 40  # room for the last tick's label
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of calls">'
    ]
    out += _axis(span, height)
    for index, row in enumerate(rows):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        if index % 2:
            out.append(
                f'<rect x="0" y="{y}" width="{width}" height="{ROW_HEIGHT}" fill="#fafafa"/>'
            )
        out.append(f'<text x="4" y="{y + 13}">{esc(_clip(row.call, 46))}</text>')
        for attempt in row.attempts:
            out += _bars(row, attempt, y, (origin, finish), scale)
    out.append("</svg>")
    return "\n".join(out)


def _axis(span: float, height: int) -> list[str]:
    step = _tick(span)
    out, tick = [], 0.0
    while tick <= span + 1e-9:
        x = LABEL_WIDTH + tick * CHART_WIDTH / span
        out.append(
            f'<line x1="{x:.1f}" y1="{AXIS_HEIGHT - 4}" x2="{x:.1f}" y2="{height}" '
            'stroke="#e0e0e0"/>'
        )
        out.append(f'<text x="{x + 2:.1f}" y="{AXIS_HEIGHT - 8}">{esc(duration(tick))}</text>')
        tick += step
    return out


def _tick(span: float) -> float:
    """A round step giving at most 10 ticks."""
    for step in (
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
        15,
        30,
        60,
        120,
        300,
        600,
        900,
        1800,
        3600,
    ):
        if span / step <= 10:
            return float(step)
    return float(3600 * max(1, round(span / 36000)))


def _bars(
    row: CallRow, attempt: Attempt, y: int, axis: tuple[float, float], scale: float
) -> list[str]:
    """An attempt still open (queued or running) is drawn to the chart's end."""
    out = []
    origin, now = axis
    title = esc(f"{row.call} attempt {attempt.number}: {attempt.outcome} {attempt.detail}".strip())
    queued, started, ended = attempt.queued_at, attempt.started_at, attempt.ended_at
    if ended is None and attempt.outcome != CACHED:
        if started is None:  # still queued
            return (
                []
                if queued is None
                else [_rect(queued, now, y, origin, scale, COLOURS[QUEUED], title)]
            )
        ended = now  # still running
    if attempt.outcome == CACHED:  # no Batch job: a mark where the hit was
        at = ended or started or queued
        return [] if at is None else [_rect(at, at, y, origin, scale, COLOURS[CACHED], title)]
    if queued is not None and (started or ended) is not None:
        out.append(_rect(queued, started or ended, y, origin, scale, COLOURS[QUEUED], title))
    if started is not None and ended is not None:
        colour = COLOURS.get(attempt.outcome, COLOURS[RUNNING])
        out.append(_rect(started, ended, y, origin, scale, colour, title))
    return out


def _rect(  # noqa: PLR0913 - a bar's span, row, axis and look
    begin: float, end: float | None, y: int, origin: float, scale: float, fill: str, title: str
) -> str:
    x = LABEL_WIDTH + (begin - origin) * scale
    width = max(3.0, ((end or begin) - begin) * scale)  # an instant is still visible
    return (
        f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW_HEIGHT - 6}" '
        f'fill="{fill}"><title>{title}</title></rect>'
    )


def _calls_table(rows: list[CallRow]) -> str:
    head = (
        "<tr><th>call</th><th>shard</th><th>status</th><th class=num>attempts</th>"
        "<th class=num>cpu</th><th class=num>memory</th><th class=num>gpu</th><th>disks</th>"
        "<th>image</th><th class=num>queued</th><th class=num>ran</th>"
        "<th class=num>wall</th></tr>"
    )
    body = []
    for row in rows:
        r = row.resources
        memory = f"{r.memory_mib} MiB" if r.memory_mib is not None else None
        cells = [
            (row.call, ""),
            (row.shard, ""),
            (row.status, ""),
            (len([a for a in row.attempts if a.outcome != CACHED]), "num"),
            (r.cpu, "num"),
            (memory, "num"),
            (r.gpus, "num"),
            (r.disks, ""),
            (r.image, ""),
            (duration(row.queued_seconds), "num"),
            (duration(row.running_seconds), "num"),
            (duration(row.wall_seconds), "num"),
        ]
        colour = COLOURS.get(row.status, "#212121")
        tds = "".join(
            f'<td style="color:{colour}">{esc(v)}</td>'
            if index == 2
            else f"<td{' class=num' if cls else ''}>{esc('-' if v is None else v)}</td>"
            for index, (v, cls) in enumerate(cells)
        )
        body.append(f"<tr>{tds}</tr>")
    if not body:
        return "<p>no task calls</p>"
    return f"<table>{head}{''.join(body)}</table>"


def _cost(report: Report) -> str:
    items = "".join(
        f"<tr><td>{esc(name)}</td><td class=num>${dollars:.6f}</td></tr>"
        for name, dollars in report.cost.items.items()
    )
    usage = report.usage
    invocations = sum(i.count for i in usage.invocations)
    basis = (
        f"{invocations:g} Lambda invocations, {usage.ddb_read_units:g} DynamoDB read and "
        f"{usage.ddb_write_units:g} write request units, {usage.sfn_transitions:g} state "
        f"transitions, {usage.aws_events:g} AWS events"
    )
    return (
        f"<table>{items}<tr><th>total</th><th class=num>${report.cost.total:.6f}</th></tr>"
        f'</table><p class="meta">{esc(basis)}; at public us-east-1 on-demand prices, free '
        "tiers left out, requests per event as counted by bench/bench_cost.py. Batch compute "
        "is not included.</p>"
    )


def _hidden(count: int) -> str:
    return f'<p class="meta">{count} more calls not shown</p>' if count > 0 else ""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _when(at: float | None) -> str | None:
    if not at:
        return None
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.2f}s"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
