"""bench/versus_nbgrader.py in quick mode: a real nbgrader course whose grade cells hold hidden assert tests is built
and graded by `nbgrader autograde` and by the kit; both times, the ratio and both grade tables are printed."""
import re
import subprocess
import sys

from autograder.assignments import ROOT
from tests.test_autograde import EXPECTED

SAMPLES = ["reference", "release"]  # the two ends: each bug costs both graders a training run
WRONG_BELOW = r"wrong samples \(bugs, the untouched release\) scored below the reference:"


def test_quick_run_prints_both_times_and_grade_tables():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "versus_nbgrader.py"), "--quick",
                           "--samples", ",".join(SAMPLES)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "quick mode: not a measurement" in out
    assert re.search(r"^  nbgrader autograde +[\d.]+ s", out, re.M)
    assert re.search(r"^  kit autograde --jobs 1 \(with reference\) +[\d.]+ s", out, re.M)
    assert re.search(r"^  ratio nbgrader / kit: [\d.]+x", out, re.M)
    rows = {m[1]: (float(m[2]), float(m[3])) for m in
            re.finditer(r"^  s\d\d_(\w+) +\w+ +([\d.]+) +([\d.]+) ", out, re.M)}
    assert set(rows) == set(SAMPLES), out
    # the kit's totals are the samples' exact scores, graded from the notebooks as nbgrader collected them
    assert {sample: kit for sample, (_, kit) in rows.items()} == {s: EXPECTED[s][0] for s in SAMPLES}
    # nbgrader's hidden tests really ran: the reference passes every structural test (the training part depends on
    # the shrunk run), the untouched release passes none
    assert rows["reference"][0] >= 105 and rows["release"][0] == 0, out
    for grader in ("nbgrader", "kit"):
        assert re.search(rf"^  {grader} +{WRONG_BELOW} 1 of 1", out, re.M), out
