"""Report: each student's results as they finish (atomically), and the class's files at the end.

Per student: results/<student>.json (Gradescope's results.json), feedback/<student>.md (every check with its
points and message), state/<student>.json (everything, written last: its presence means "done"). For the class:
grades.csv, summary.json and report.html (classreport), rebuilt from the state files, so an interrupted run still
reports what finished.
"""
import csv
import hashlib
import io
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from .grade import StudentResult
from .text import code_span, fenced

MAX_NAME = 80  # characters of a student's file names: a 250-character submission name must not stop the batch


def safe_name(student: str) -> str:
    """The student's name as a file name: plain characters, and bounded (a long one keeps a hash of the rest)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", student).lstrip(".") or "student"
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME - 13]}-{hashlib.sha256(student.encode()).hexdigest()[:12]}"
    return name


def write_atomically(path: Path, text: str):
    """`text` into `path` whole or not at all; UTF-8 always, what it cannot hold (a lone surrogate from a file name
    that was not UTF-8) replaced, so a student's name cannot stop the class's files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def status(result: StudentResult) -> str:
    if not result.cause:
        return "graded"
    kind = result.cause.split(":", 1)[0]
    return f"not graded ({kind})" if result.score == 0 else f"partly graded ({kind})"


def message(r) -> str:
    """A check's message: the grader's words, then what the student's code said, quoted apart as code."""
    return r.message + (f"\n\nYour code said:\n\n{fenced(r.said)}" if r.said else "")


def preamble(result: StudentResult) -> list:
    """What the student reads before the checks, the same on Gradescope and in the feedback file."""
    lines = [f"Graded file: {code_span(Path(result.source).name)}. Training run data: {result.data}.", ""]
    if result.picked:
        lines += [result.picked, ""]
    if result.cause:
        lines += [f"> Could not be graded in full: {result.cause}", ""]
    if result.notes:
        lines += ["Skipped while reading your definitions:", "",
                  fenced("\n".join(result.notes)), ""]
    return lines


def gradescope(result: StudentResult) -> dict:
    return {
        "score": result.score, "execution_time": round(result.timings.get("total", 0.0), 2),
        "output": "\n".join(preamble(result)), "output_format": "md",
        "visibility": "visible", "stdout_visibility": "hidden",
        "tests": [{"name": r.title, "number": str(i), "score": r.score, "max_score": r.max_score,
                   "status": "passed" if r.passed else "failed", "output": message(r), "output_format": "md",
                   "visibility": "visible", "tags": [r.name]} for i, r in enumerate(result.results, start=1)],
    }


def feedback(result: StudentResult, assignment: str) -> str:
    lines = [f"# {assignment}: feedback for {safe_name(result.student)}", "",
             f"**Score: {result.score:g} / {result.max_score:g}**", "", *preamble(result)]
    lines += ["| check | points | result |", "|---|---|---|"]
    lines += [f"| {r.title} | {r.score:g} / {r.max_score:g} | {'passed' if r.passed else 'failed'} |"
              for r in result.results]
    lines.append("")
    for r in result.results:
        lines += [f"### {'✔' if r.passed else '✘'} {r.title} ({r.score:g} / {r.max_score:g})", "", message(r), ""]
    return "\n".join(lines)


def write_student(out: Path, result: StudentResult, assignment: str):
    name = safe_name(result.student)
    write_atomically(out / "results" / f"{name}.json", json.dumps(gradescope(result), indent=1))
    write_atomically(out / "feedback" / f"{name}.md", feedback(result, assignment))
    write_atomically(out / "state" / f"{name}.json", json.dumps(result.to_json(), indent=1))


def stored(out: Path, student: str):
    """The student's stored result, or None when there is none or it cannot be read."""
    try:
        return StudentResult.from_json(json.loads((out / "state" / f"{safe_name(student)}.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def done(out: Path, student: str, key: dict) -> bool:
    """Whether a stored result can stand: made from the same submission, checks, budget, device and data (`key`),
    and not an internal error of the grader's."""
    result = stored(out, student)
    return result is not None and result.key == key and not (result.cause or "").startswith("internal")


def finished(out: Path) -> list:
    results = []
    for p in sorted((out / "state").glob("*.json")):
        result = stored(out, p.stem)
        if result is not None:
            results.append(result)
    return results


def claim(out: Path, assignment: str):
    """Mark OUT as this assignment's; refuse an OUT that holds another assignment's results."""
    marker = out / ".autograde.json"
    if marker.exists():
        owner = json.loads(marker.read_text()).get("assignment")
        if owner != assignment:
            raise ValueError(f"{out} holds results of the assignment {owner}: choose another --out")
    else:
        write_atomically(marker, json.dumps({"assignment": assignment}))


def write_class(out: Path, assignment: str, columns: list, extra: dict) -> list:
    """grades.csv and summary.json from every finished student; returns the results."""
    results = finished(out)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", *[c[0] for c in columns], "score", "max_score", "status"])
    for r in results:
        scores = {c.name: c.score for c in r.results}
        writer.writerow([r.student, *[f"{scores.get(c[0], 0):g}" for c in columns], f"{r.score:g}",
                         f"{r.max_score:g}", status(r)])
    write_atomically(out / "grades.csv", buffer.getvalue())
    scores = [r.score for r in results]
    summary = {
        "assignment": assignment, "students": len(results),
        "max_score": sum(c[2] for c in columns),
        "mean": round(statistics.mean(scores), 2) if scores else None,
        "median": statistics.median(scores) if scores else None,
        "checks": {c[0]: {"title": c[1], "points": c[2],
                          "passed": sum(any(x.name == c[0] and x.passed for x in r.results) for r in results)}
                   for c in columns},
        "results": [{"student": r.student, "score": r.score, "status": status(r), "cause": r.cause}
                    for r in results],
        **extra,
    }
    write_atomically(out / "summary.json", json.dumps(summary, indent=1))
    try:  # report.html beside them; it must never break grading
        from . import classreport
        classreport.write_html(out, summary, results)
    except Exception as exc:
        print(f"autograde: could not write {out / 'report.html'}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return results


def table(results: list, max_score) -> str:
    width = max([len(r.student) for r in results] + [7])
    rows = [f"{'student':<{width}}  {'score':>9}  failed  status"]
    for r in results:
        failed = sum(not c.passed for c in r.results)
        rows.append(f"{r.student:<{width}}  {r.score:>4g}/{max_score:<4g}  {failed:>6}  {status(r)}")
    return "\n".join(rows)
