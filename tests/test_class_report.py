"""The class report, OUT/report.html: built from synthetic results (no grading), read as HTML, and loaded in a real
browser (Debian's chromium, headless: installed here when missing; CI must have it)."""
import base64
import html.parser
import io
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from autograder import classreport, report
from autograder.check import Result
from autograder.grade import StudentResult

COLUMNS = [("shapes", "Output shapes match", 4), ("params", "Parameter count matches", 3),
           ("trains", "The model learns ($\\alpha$ of the reference)", 3)]
EXTRA = {"device": "cpu", "data": "synthetic CIFAR-10 stand-in", "isolation": ["timeout", "WARNING: NOT confined"],
         "reference_training": {"accuracy": 0.94, "chance": 0.1}, "workers": [{"pid": 1}], "seconds": 12.5,
         "start_method": "forkserver"}
SHAPE_MESSAGE = "stem: expected (1, 64, 16, 16), got (1, 64, 32, 32). Next step: check the stride."
HOSTILE_NAME = "<script>alert('name')</script>"
HOSTILE_MESSAGE = "</table><img src=x onerror=alert(1)><a href=\"https://evil.example/x.css\">"


def result(student, failed=(), cause=None, messages=None):
    """A student's result: every check of COLUMNS passed except those in `failed` (message from `messages`)."""
    messages = messages or {}
    return StudentResult(student, f"/submissions/{student}.ipynb", [
        Result(name, title, 0 if name in failed else points, points, name not in failed,
               messages.get(name, SHAPE_MESSAGE) if name in failed else "ok")
        for name, title, points in COLUMNS], cause=cause, data="synthetic")


def build(out: Path, results: list, extra=EXTRA) -> str:
    for r in results:
        report.write_student(out, r, "resnet_test")
    report.write_class(out, "resnet_test", COLUMNS, dict(extra))
    return (out / "report.html").read_text()


class Page(html.parser.HTMLParser):
    """What the tests read of a page: each table's rows (cell texts, and the row's attributes) and the images."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tables, self.images, self.links, self.scripts = {}, [], [], 0
        self.table = self.row = self.cell = None
        self.head = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.table = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "thead":
            self.head = True
        elif tag == "tr" and self.table is not None and not self.head:
            self.row = {"attrs": attrs, "cells": []}
            self.table.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
            self.row["cells"].append(self.cell)
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = self.row = self.cell = None
        elif tag == "thead":
            self.head = False
        elif tag == "tr":
            self.row = self.cell = None
        elif tag in ("td", "th"):
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def rows(self, table_id, css_class=None):
        """The rows of a table (its head left out) as lists of cell texts; only those of `css_class` if given."""
        return [["".join(c).strip() for c in row["cells"]] for row in self.tables.get(table_id, [])
                if css_class is None or css_class in row["attrs"].get("class", "").split()]


def students(page):
    return page.rows("students", "student")


def decoded_pngs(page):
    """Each embedded figure, decoded: (height, width, channels) arrays."""
    from matplotlib import image

    figures = [img for img in page.images if "figure" in img.get("class", "").split()]
    return [image.imread(io.BytesIO(base64.b64decode(img["src"].removeprefix("data:image/png;base64,"), validate=True)),
                         format="png") for img in figures]


# ---- the page, read as HTML ---------------------------------------------------------------------------------------

def test_report_has_every_part(tmp_path):
    results = [result("ada"), result("grace", failed={"shapes"}), result("linus", failed={"shapes", "params"}),
               result("margaret", failed={"shapes"}),
               result("broken", failed={"shapes", "params", "trains"}, cause="syntax: line 3 is not Python",
                      messages={"shapes": "syntax: line 3 is not Python", "params": "syntax: line 3 is not Python",
                                "trains": "syntax: line 3 is not Python"})]
    text = build(tmp_path, results)
    page = Page(text)

    rows = students(page)
    assert sorted(r[0] for r in rows) == ["ada", "broken", "grace", "linus", "margaret"]
    by_name = {r[0]: r for r in rows}
    assert by_name["ada"][1:4] == ["10 / 10", "graded", "0"]
    assert by_name["linus"][1:4] == ["3 / 10", "graded", "2"]
    assert by_name["broken"][1].startswith("0 / 10") and by_name["broken"][2].startswith("not graded (syntax)")
    assert by_name["broken"][3] == "3"

    # the same check failing with the same message is one row, counted once per student: 3 students here
    failures = page.rows("failures")
    assert failures[0] == ["3", "Output shapes match", SHAPE_MESSAGE]
    counted = {(row[1], row[2]): int(row[0]) for row in failures}
    assert counted[("Parameter count matches", SHAPE_MESSAGE)] == 1
    assert counted[("Output shapes match", "syntax: line 3 is not Python")] == 1
    assert sum(counted.values()) == sum(not c.passed for r in results for c in r.results)

    checks = {row[0]: row[1:] for row in page.rows("checks")}
    assert checks["Output shapes match"] == ["4", "1 / 5", "20%"]
    assert checks["Parameter count matches"] == ["3", "3 / 5", "60%"]

    facts = {row[0]: row[1] for row in page.rows("facts")}
    assert facts["device"] == "cpu" and facts["training run data"] == "synthetic CIFAR-10 stand-in"
    assert facts["reference's held-out accuracy"].startswith("94.0%") and facts["run time"] == "12.5 s"
    assert "WARNING: NOT confined" in facts["isolation of submissions"]
    assert re.search(r"<title>resnet_test: class report</title>", text)
    assert 'id="counts">5 student(s): 4 graded in full, 1 not in full; out of 10 points' in text

    # each row links to the student's feedback file, relatively
    assert sorted(page.links) == sorted(f"feedback/{report.safe_name(r.student)}.md" for r in results)
    assert all((tmp_path / link).is_file() for link in page.links)

    # figures: embedded PNGs that decode; and nothing is fetched from anywhere
    pngs = decoded_pngs(page)
    assert len(pngs) == 2 and all(p.shape[0] > 100 and p.shape[1] > 100 for p in pngs)
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    assert "http://" not in text and "https://" not in text
    assert page.scripts == 0 and "<link" not in text and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text  # and a browser would refuse any resource that is not inline anyway


def test_hostile_names_and_messages_are_text(tmp_path):
    text = build(tmp_path, [result(HOSTILE_NAME, failed={"params"}, messages={"params": HOSTILE_MESSAGE}),
                            result("a&b \"quoted\"", failed={"params"}, messages={"params": HOSTILE_MESSAGE}),
                            result("Jos\u00e9 \u674e")])
    page = Page(text)
    assert sorted(r[0] for r in students(page)) == sorted([HOSTILE_NAME, "a&b \"quoted\"", "Jos\u00e9 \u674e"])
    assert page.rows("failures") == [["2", "Parameter count matches", HOSTILE_MESSAGE]]
    assert page.scripts == 0 and "<script" not in text.lower()
    assert "onerror=alert(1)>" not in text and "&lt;/table&gt;&lt;img src=x onerror=alert(1)&gt;" in text
    assert text.count("</table>") == text.count("<table") == 4
    assert "https://" not in text.replace("https://evil.example/x.css", "")  # only as text, escaped
    assert 'href="https' not in text and 'href="http' not in text
    assert len(page.images) == 2  # the figures, and not the message's image
    # the link is the file's safe name, URL-quoted
    assert f'href="feedback/{urllib.parse.quote(report.safe_name(HOSTILE_NAME))}.md"' in text


def test_text_that_utf8_cannot_hold_is_replaced():
    assert classreport.esc("a\udcff<b>") == "a?&lt;b&gt;"


def test_long_messages_are_bounded(tmp_path):
    long = "x" * 5000
    text = build(tmp_path, [result("ada", failed={"shapes"}, messages={"shapes": long})])
    cell = Page(text).rows("failures")[0][2]
    assert len(cell) == classreport.MAX_MESSAGE and cell.endswith("\u2026")


def test_empty_class(tmp_path):
    text = build(tmp_path, [])
    page = Page(text)
    assert students(page) == [] and "students" in page.tables
    assert 'id="no-students"' in text and 'id="no-figures"' in text and 'id="no-failures"' in text
    assert [row[1:] for row in page.rows("checks")] == [["4", "0 / 0", "\u2013"], ["3", "0 / 0", "\u2013"],
                                                           ["3", "0 / 0", "\u2013"]]
    assert (tmp_path / "grades.csv").exists()


def test_a_one_batch_reference_run_shows_its_lowest_loss(tmp_path):
    """A CPU budget of one fixed batch has no held-out accuracy: the facts give the reference's lowest loss."""
    text = build(tmp_path, [], {**EXTRA, "reference_training": {"fit": 0.0042, "chance": 0.5}})
    facts = {row[0]: row[1] for row in Page(text).rows("facts")}
    assert facts["reference's lowest loss on one fixed batch"] == "0.004"
    assert "reference's held-out accuracy" not in facts


def test_without_matplotlib_the_report_says_why(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import of it raises ImportError, as if not installed
    text = build(tmp_path, [result("ada"), result("grace", failed={"shapes"})])
    page = Page(text)
    assert len(students(page)) == 2 and page.images == []
    why = re.search(r'<p class="nofigures" id="no-figures">(.*?)</p>', text).group(1)
    assert "could not be made" in why and "ModuleNotFoundError" in why and "matplotlib" in why


def test_a_failing_report_never_breaks_grading(tmp_path, monkeypatch, capsys):
    def broken(*args):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(classreport, "write_html", broken)
    results = report.write_class(tmp_path, "resnet_test", COLUMNS, dict(EXTRA))
    assert results == [] and (tmp_path / "grades.csv").exists() and (tmp_path / "summary.json").exists()
    assert "disk on fire" in capsys.readouterr().err


def test_report_is_rebuilt_and_replaced(tmp_path):
    build(tmp_path, [result("ada")])
    text = build(tmp_path, [result("grace", failed={"shapes"})])
    assert sorted(r[0] for r in students(Page(text))) == ["ada", "grace"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report.html")] == []  # no temporary left


# ---- the page in a real browser -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium; installed with apt when missing and this is root. Skipped where it cannot be had, except
    on CI (CI=true), where the browser test must run."""
    found = shutil.which("chromium")
    tried = ""
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            done = subprocess.run(["sh", "-c", "apt-get update -qq && apt-get install -y -qq chromium"],
                                  capture_output=True, text=True, timeout=1200,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            tried = f" (apt-get exited {done.returncode}: {done.stderr.strip()[-300:]})"
        except subprocess.TimeoutExpired:
            tried = " (apt-get ran past 20 minutes)"
        found = shutil.which("chromium")
    if found is None:
        reason = ("chromium is not installed and could not be installed here (needs root and apt-get: "
                  f"`apt-get install chromium`){tried}")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def browse(chromium, profile: Path, *args, timeout=180):
    """chromium, headless, on its own throw-away profile; the completed process."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--hide-scrollbars", "--force-device-scale-factor=1",
               f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_report_in_a_real_browser(tmp_path, chromium):
    from matplotlib import image

    out = tmp_path / "out"
    names = [f"student{i:02d}" for i in range(12)] + [HOSTILE_NAME]
    results = [result(name, failed=({"shapes"} if i % 2 else set()) | ({"trains"} if i % 3 == 0 else set()))
               for i, name in enumerate(names[:-1])]
    results.append(result(HOSTILE_NAME, failed={"params"}, messages={"params": HOSTILE_MESSAGE}))
    build(out, results)
    url = (out / "report.html").resolve().as_uri()

    dom = browse(chromium, tmp_path / "profile-dom", "--dump-dom", url).stdout
    page = Page(dom)
    rows = students(page)
    assert len(rows) == len(names) and sorted(r[0] for r in rows) == sorted(names)
    assert page.scripts == 0  # the hostile name stayed text in the browser's own DOM
    pngs = decoded_pngs(page)
    assert len(pngs) == 2 and all(p.shape[0] > 100 and p.shape[1] > 100 and p.std() > 0 for p in pngs)

    shot = tmp_path / "report.png"
    browse(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,2000", url)
    pixels = image.imread(shot)  # floats in [0, 1]
    assert pixels.shape[:2] == (2000, 1200)
    rgb = (pixels[..., :3] * 255).round().astype(int)
    colours = {tuple(c) for c in rgb.reshape(-1, 3)[::7]}
    assert len(colours) > 50, f"the screenshot is nearly blank: {len(colours)} colours"
    bar = [int(classreport.BAR[i:i + 2], 16) for i in (1, 3, 5)]
    drawn = (abs(rgb - bar).max(axis=-1) <= 8).sum()
    assert drawn > 2000, f"the figures' bars are not on screen ({drawn} pixels of their colour)"
