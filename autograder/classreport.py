"""The class report: OUT/report.html, one self-contained page for the instructor.

The score distribution, each check's pass rate, the most common failure messages with how many students got each,
the run's facts and a row per student linking to their feedback file. No network: the figures are PNGs embedded as
data: URLs, the style is inline, and there is no script. Student names and messages are hostile input: everything
shown is HTML-escaped, and a Content-Security-Policy forbids scripts and any resource that is not inline.

Rebuilt by report.write_class after every run (an interrupted one included). The figures need matplotlib; when they
cannot be made the page is written without them and says why.
"""
import base64
import html
import io
import urllib.parse
from collections import Counter
from datetime import datetime
from pathlib import Path

from . import report

MAX_MESSAGE = 300  # characters of a failure message shown in the report
MAX_CAUSE = 200  # characters of a student's cause shown in their row
MAX_LABEL = 48  # characters of a check's title on a figure's axis
TOP_FAILURES = 15  # rows of the most common failures
BAR = "#4c72b0"  # the figures' colour

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .5em 0; width: 100%; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.message { font-family: ui-monospace, monospace; font-size: .9em; white-space: pre-wrap; word-break: break-word; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; }
img.figure { max-width: 100%; border: 1px solid #eee; }
#facts th { width: 16em; }
.warning { color: #a00; font-weight: bold; }
.status-graded { color: #070; } .status-partly { color: #a60; } .status-not { color: #a00; font-weight: bold; }
.nofigures { background: #fff4e0; border: 1px solid #e0b060; padding: .5em 1em; }
"""


def esc(value) -> str:
    """Any value as HTML text: quotes included, so it is safe inside an attribute too (a lone surrogate, which
    UTF-8 cannot hold, becomes "?")."""
    return html.escape(str(value).encode("utf-8", "replace").decode("utf-8"), quote=True)


def bounded(text: str, limit: int) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def figure_label(text: str) -> str:
    """A check's title on a figure's axis: bounded, and `$` kept literal (no mathtext)."""
    return bounded(text, MAX_LABEL).replace("$", r"\$")


def failures(results: list) -> list:
    """((check name, message), students) of every failed check, most common first; one count per student."""
    counts = Counter()
    for r in results:
        counts.update({(c.name, c.message) for c in r.results if not c.passed})
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # the figure's own canvas: pyplot and the global backend are never touched
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(summary: dict, results: list) -> dict:
    """{id: base64 PNG} of the score histogram and the checks' pass rates (matplotlib's Figure, Agg canvas)."""
    from matplotlib.figure import Figure

    n, top = len(results), summary.get("max_score") or 0
    made = {}
    fig = Figure(figsize=(5, 3.2))
    ax = fig.add_subplot()
    if top == int(top) and 0 < top <= 40:  # a bar per whole score, centred on it
        bins, span = int(top) + 1, (-0.5, top + 0.5)
    else:
        bins, span = 20, (0, top or 1)
    ax.hist([r.score for r in results], bins=bins, range=span, color=BAR, edgecolor="white")
    ax.set_xlabel("score")
    ax.set_ylabel("students")
    ax.set_title(f"Scores of {n} student(s), out of {top:g}")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    made["scores"] = _png(fig)

    checks = list((summary.get("checks") or {}).values())
    if checks:
        fig = Figure(figsize=(5, 0.9 + 0.35 * len(checks)))
        ax = fig.add_subplot()
        rates = [100 * c["passed"] / n for c in checks]
        labels = [figure_label(c["title"]) for c in checks]
        ax.barh(range(len(checks)), rates, color=BAR)
        ax.set_yticks(range(len(checks)), labels)
        ax.invert_yaxis()  # the first check on top, as in the table
        ax.set_xlim(0, 100)
        ax.set_xlabel("% of students who passed")
        ax.set_title("Pass rate of each check")
        made["checks"] = _png(fig)
    return made


def _status_class(status: str) -> str:
    return "status-" + status.split(" ", 1)[0]


def _facts(summary: dict, written: str) -> list:
    """(label, HTML) rows of the run's facts; absent ones are left out."""
    rows = []
    if summary.get("device"):
        rows.append(("device", esc(summary["device"])))
    if summary.get("data"):
        rows.append(("training run data", esc(summary["data"])))
    training = summary.get("reference_training")
    if isinstance(training, dict) and isinstance(training.get("accuracy"), (int, float)):
        chance = training.get("chance")
        rows.append(("reference's held-out accuracy", esc(f"{training['accuracy']:.1%}" + (
            f" (chance: {chance:.0%})" if isinstance(chance, (int, float)) else ""))))
    elif isinstance(training, dict) and isinstance(training.get("fit"), (int, float)):
        rows.append(("reference's lowest loss on one fixed batch", esc(f"{training['fit']:.3f}")))
    if isinstance(summary.get("seconds"), (int, float)):
        rows.append(("run time", esc(f"{summary['seconds']:g} s")))
    workers = summary.get("workers")
    if isinstance(workers, list) and workers:
        rows.append(("workers started", esc(len(workers))))
    if summary.get("start_method"):
        rows.append(("start method", esc(summary["start_method"])))
    isolation = summary.get("isolation")
    if isinstance(isolation, list) and isolation:
        items = "".join(f'<li class="warning">{esc(line)}</li>' if "WARNING" in str(line) else
                        f"<li>{esc(line)}</li>" for line in isolation)
        rows.append(("isolation of submissions", f"<ul>{items}</ul>"))
    rows.append(("report written", esc(written)))
    return rows


def render(summary: dict, results: list, made: dict, why_not: str = "") -> str:
    """The page. `made`: {figure id: base64 PNG}; `why_not`: why there are no figures, when there are none."""
    assignment = summary.get("assignment", "")
    n = len(results)
    top = summary.get("max_score") or 0
    graded = sum(not r.cause for r in results)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        'style-src \'unsafe-inline\'">',
        f"<title>{esc(assignment)}: class report</title>", f"<style>{STYLE}</style></head><body>",
        f'<h1 id="title">{esc(assignment)}: class report</h1>',
        f'<p class="lead" id="counts">{n} student(s): {graded} graded in full, {n - graded} not in full; '
        f"out of {top:g} points"
        + (f"; mean {summary['mean']:g}, median {summary['median']:g}" if summary.get("mean") is not None else "")
        + "</p>",
    ]

    parts.append('<h2 id="distribution">Score distribution and pass rates</h2>')
    if made:
        parts.append('<div class="figures">' + "".join(
            f'<img class="figure" id="figure-{esc(key)}" alt="{esc(alt)}" src="data:image/png;base64,{made[key]}">'
            for key, alt in (("scores", "histogram of the scores"), ("checks", "pass rate of each check"))
            if key in made) + "</div>")
    else:
        parts.append(f'<p class="nofigures" id="no-figures">No figures: {esc(why_not)}</p>')

    parts.append('<h2 id="checks-heading">Checks</h2><table id="checks"><thead><tr><th>check</th>'
                 '<th class="num">points</th><th class="num">passed</th><th class="num">%</th></tr></thead><tbody>')
    for name, check in (summary.get("checks") or {}).items():
        rate = f"{100 * check['passed'] / n:.0f}%" if n else "\u2013"
        parts.append(f'<tr data-check="{esc(name)}"><td>{esc(check["title"])}</td>'
                     f'<td class="num">{esc(format(check["points"], "g"))}</td>'
                     f'<td class="num">{check["passed"]} / {n}</td><td class="num">{rate}</td></tr>')
    parts.append("</tbody></table>")

    titles = {name: check["title"] for name, check in (summary.get("checks") or {}).items()}
    common = failures(results)
    parts.append('<h2 id="failures-heading">Most common failures</h2>')
    if common:
        shown = common[:TOP_FAILURES]
        parts.append(f"<p>{len(shown)} of {len(common)} distinct failure(s) (check and message), most common "
                     "first.</p>")
        parts.append('<table id="failures"><thead><tr><th class="num">students</th><th>check</th><th>message</th>'
                     "</tr></thead><tbody>")
        for (name, text), count in shown:
            parts.append(f'<tr><td class="num count">{count}</td><td>{esc(titles.get(name, name))}</td>'
                         f'<td class="message">{esc(bounded(text, MAX_MESSAGE))}</td></tr>')
        parts.append("</tbody></table>")
    else:
        parts.append('<p id="no-failures">No check failed.</p>')

    parts.append('<h2 id="facts-heading">The run</h2><table id="facts"><tbody>')
    written = datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
    parts += [f"<tr><th>{esc(label)}</th><td>{value}</td></tr>" for label, value in _facts(summary, written)]
    parts.append("</tbody></table>")

    parts.append('<h2 id="students-heading">Students</h2>')
    if not results:
        parts.append('<p id="no-students">No student has finished yet.</p>')
    parts.append('<table id="students"><thead><tr><th>student</th><th class="num">score</th><th>status</th>'
                 '<th class="num">failed checks</th><th>feedback</th></tr></thead><tbody>')
    for r in results:
        state = report.status(r)
        link = "feedback/" + urllib.parse.quote(report.safe_name(r.student) + ".md")
        cause = f'<div class="cause">{esc(bounded(r.cause, MAX_CAUSE))}</div>' if r.cause else ""
        parts.append(f'<tr class="student"><td class="name">{esc(r.student)}</td>'
                     f'<td class="num">{r.score:g} / {r.max_score:g}</td>'
                     f'<td class="{_status_class(state)}">{esc(state)}{cause}</td>'
                     f'<td class="num">{sum(not c.passed for c in r.results)}</td>'
                     f'<td><a href="{esc(link)}">feedback</a></td></tr>')
    parts.append("</tbody></table></body></html>")
    return "\n".join(parts) + "\n"


def write_html(out: Path, summary: dict, results: list) -> Path:
    """Write OUT/report.html (atomically) and return its path. Figures that cannot be made are left out, and the
    page says why: the report never breaks grading."""
    made, why_not = {}, ""
    if not results:
        why_not = "no student has finished yet."
    else:
        try:
            made = figures(summary, results)
        except Exception as exc:  # matplotlib missing or failing: the page is still written
            why_not = f"they could not be made here ({type(exc).__name__}: {bounded(exc, 200)})."
    path = Path(out) / "report.html"
    report.write_atomically(path, render(summary, results, made, why_not))
    return path
