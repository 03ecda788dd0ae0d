"""The student release is nbgrader's output of the instructor notebook: in sync, stubbed, and free of solutions."""
import contextlib
import io
import re
import subprocess
import sys

import pytest
import torch

from autograder.assignments import ASSIGNMENTS
from autograder.grade import Checklist
from autograder.notebooks import SETTINGS_TAG, read, tagged, with_settings
from autograder.release import STUB, stale
from tests.facts import FACTS
from tests.helpers import every_assignment, facts_of, import_file  # noqa: F401 (fixtures: every assignment)

SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
STUB_LINE = re.compile(r'^[ \t]*raise NotImplementedError\("fill in here')


def test_every_assignment_has_its_facts():
    assert set(FACTS) == set(ASSIGNMENTS)


def solution_lines(assignment):
    """Lines written only inside the instructor notebook's solution regions: what the release must not show."""
    source = "\n".join(c.source for c in read(assignment.source).cells)
    inside = {line.strip() for region in SOLUTION_REGION.findall(source) for line in region.splitlines()}
    outside = {line.strip() for line in SOLUTION_REGION.sub("", source).splitlines()}
    return {line for line in inside - outside if any(c.isalnum() for c in line)}  # not a lone bracket


def released_texts(assignment):
    """The student's two files as code: the notebook's cell sources joined, and the .py."""
    notebook = "\n".join(c.source for c in read(assignment.student_notebook).cells)
    return {assignment.notebook: notebook, assignment.module: assignment.student_module.read_text()}


def test_release_is_in_sync_with_the_instructor_notebook(assignment):
    assert stale(assignment) == [], "the release drifted from solutions/: run `make release` and commit"


def test_release_shows_no_solution_code(assignment, facts):
    lines = solution_lines(assignment)
    assert len(lines) >= facts["solution_lines"]  # the blocks and every layer of the net
    for name, text in released_texts(assignment).items():
        # the comment above each stub names what to assign (`# self.layer1 = nn.Sequential(...): ...`): an opening
        # line like `self.layer1 = nn.Sequential(` may show there, and only there
        leaked = sorted(line for line in lines if text.count(line) > text.count(f"# {line}...)"))
        assert not leaked, f"{name} shows solution lines: {leaked}"


def test_every_solution_region_became_a_stub(assignment, facts):
    regions = len(SOLUTION_REGION.findall("\n".join(c.source for c in read(assignment.source).cells)))
    assert regions == facts["regions"]
    for name, text in released_texts(assignment).items():
        assert text.count(STUB) == regions, name
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, name


def test_no_hidden_tests_anywhere(assignment):
    for path in (assignment.source, assignment.student_notebook, assignment.student_module):
        assert "HIDDEN TESTS" not in path.read_text(), path


def test_cells_carry_nbgrader_metadata(assignment, facts):
    cells = read(assignment.student_notebook).cells
    marked = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader for c in cells if "nbgrader" in c.metadata}
    assert {gid for gid, m in marked.items() if m.solution} == facts["solution_cells"]
    assert all(not m.locked for m in marked.values() if m.solution)
    assert all(m.locked for m in marked.values() if not m.solution)
    assert all(c.metadata.nbgrader.locked for c in cells if c.cell_type == "markdown")
    assert facts["locked_cells"] <= set(marked)
    assert all(not c.get("outputs") for c in cells)


def test_student_module_imports_and_fails_clearly_at_each_stub(assignment, facts):
    skeleton = import_file(assignment.student_module)  # definitions only: importing runs nothing
    for build in facts["stubs"]:
        with pytest.raises(NotImplementedError, match="fill in here"):
            build(skeleton)


def named_results(text):
    """What a line of code or comment says is assigned: {"self.<attr>", ...}, or {"return"}."""
    attrs = {f"self.{a}" for a in re.findall(r"\bself\.(\w+) =", text)}
    return attrs or ({"return"} if re.search(r"\breturn\b", text) else set())


def test_every_stub_sits_under_a_comment_naming_what_to_assign(assignment, facts):
    source = "\n".join(c.source for c in read(assignment.source).cells)
    wanted = [named_results(region) for region in SOLUTION_REGION.findall(source)]
    assert all(wanted) and len(wanted) == facts["regions"]
    for name, text in released_texts(assignment).items():
        lines = text.splitlines()
        stubs = [i for i, line in enumerate(lines) if STUB_LINE.match(line)]
        assert len(stubs) == len(wanted), name
        for i, want in zip(stubs, wanted):
            above = lines[i - 1].strip()
            assert above.startswith("# "), f"{name}, line {i + 1}: no comment right above the stub"
            assert named_results(above) == want, f"{name}, line {i}: {above!r} should name {sorted(want)}"


def test_the_points_in_the_headings_add_up_to_what_the_grader_gives(assignment, facts):
    total = sum(points for _, _, points in Checklist.of(assignment).columns())
    assert total == facts["total"]
    for path in (assignment.source, assignment.student_notebook):
        markdown = [c.source for c in read(path).cells if c.cell_type == "markdown"]
        headings = [int(n) for text in markdown for n in re.findall(r"^#+ .*\((\d+) points\)$", text, re.M)]
        assert len(headings) >= 3 and sum(headings) == total, (path.name, headings)
        intro = markdown[0]
        rows = re.findall(r"^\|(?! \*\*total).*\| (\d+) \|$", intro, re.M)
        assert sum(int(n) for n in rows) == total, (path.name, rows)
        assert f"**{total}**" in intro and f"{total} in all" in intro, path.name


def settings_of(nb, **changes):
    """The values the notebook's settings cell gives, after `changes` are applied to it."""
    cell, = tagged(with_settings(nb, changes), SETTINGS_TAG)
    namespace = {"torch": torch}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(cell.source, namespace)
    return namespace


def test_run_all_is_a_small_run_and_the_full_run_is_one_setting_away(assignment, facts):
    for path in (assignment.source, assignment.student_notebook):
        nb = read(path)
        quick = settings_of(nb)
        # 5,000 images x 2 epochs took 3 to 4 minutes for both models on this 2-core CPU
        assert quick["FULL_RUN"] is False and 0 < quick["TRAIN_SUBSET"] * quick["EPOCHS"] <= 10_000, path.name
        assert 0 < quick["TEST_SUBSET"] <= 1_000, path.name
        full = settings_of(nb, FULL_RUN=True)
        assert {k: full[k] for k in facts["full_run"]} == facts["full_run"], path.name
        assert tagged(nb, SETTINGS_TAG)[0].source.startswith(facts["settings_start"]), path.name


TOOLING = [re.compile(p, re.I) for p in (
    r"autograder", r"autograding", r"nbgrader", r"\bkit\b", r"KIT_", r"\bmake (demo|test|release|reference-run|data)",
    r"\breleas", r"hidden", r"instructor", r"sandbox", r"sample submission", r"solution",
)] + [re.compile(r"\bTAs?\b")]


def test_the_student_reads_nothing_about_the_course_tooling(assignment):
    for name, text in released_texts(assignment).items():
        found = sorted({m.group(0) for pattern in TOOLING for m in pattern.finditer(text)})
        assert not found, f"{name} speaks of {found}"


def run_script(path, cwd):
    return subprocess.run([sys.executable, str(path)], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_reference_module_run_as_a_script_passes_the_sanity_checks(assignment, facts, tmp_path):
    done = run_script(assignment.reference_module, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in facts["sanity_lines"]:
        assert line in done.stdout


def test_the_released_skeleton_run_as_a_script_stops_at_the_first_stub(assignment, facts, tmp_path):
    done = run_script(assignment.student_module, tmp_path)
    assert done.returncode == 1
    assert 'NotImplementedError: fill in here' in done.stderr
    assert f"in {facts['first_stub'][1]}" in done.stderr and done.stdout == ""


def test_the_released_skeleton_filled_in_passes_the_sanity_checks_as_a_script(assignment, facts, tmp_path):
    module = "\n".join(c.source for c in tagged(read(assignment.source), "module"))
    regions = iter(re.findall(r"^[ \t]*### BEGIN SOLUTION\n(.*?)^[ \t]*### END SOLUTION\n", module, re.S | re.M))
    filled = re.sub(r'^[ \t]*raise NotImplementedError\("fill in here.*\n', lambda m: next(regions),
                    assignment.student_module.read_text(), flags=re.M)
    assert next(regions, None) is None and "NotImplementedError" not in filled
    (tmp_path / assignment.module).write_text(filled)
    done = run_script(tmp_path / assignment.module, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    for line in facts["sanity_lines"]:
        assert line in done.stdout
