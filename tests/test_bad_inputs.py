"""Submissions that break, hang, hog, exit, flood or tamper: each gets a clear cause, the batch always finishes,
and nobody's score moves because of them."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from autograder import cli, report, sandbox
from autograder.assignments import ASSIGNMENTS, ROOT
from autograder.load import LoadError, Submission, definitions
from autograder.grade import Checklist, StudentResult, _reason
from tests.helpers import nested, remove_nested

SAMPLES = ROOT / "solutions" / "resnet50_cifar10" / "samples"
REFERENCE = (SAMPLES / "reference.py").read_text()
SECRET = Path(tempfile.gettempdir()) / f"cnnkit-test-shadow-{os.getpid()}"  # stands in for /etc/shadow


def with_class_body(code):
    """The reference plus a class whose body runs `code` while the definitions are read."""
    return REFERENCE + "\n\nclass Extra:\n" + indented(code) + "\n"


def indented(code):
    return "\n".join("    " + line for line in code.strip().splitlines())


BAD = {  # file name: contents
    "empty.py": "",
    "invalid_json.ipynb": '{"cells": [ this is not json',
    "binary_junk.ipynb": bytes(range(256)) * 40,
    "syntax_error.py": REFERENCE.replace("class ResidualBlock(nn.Module):", "class ResidualBlock(nn.Module)"),
    "endless_loop.py": with_class_body("while True:\n    pass"),
    "huge_allocation.py": REFERENCE.replace(
        "        self.fc = nn.Linear(1024, num_classes)\n",
        "        self.hog = torch.zeros(1 << 40)  # 4 TB\n        self.fc = nn.Linear(1024, num_classes)\n"),
    "exit_at_top_level.py": REFERENCE + "\nimport sys, os\nsys.exit(3)\nos._exit(4)\n",
    "exit_in_class_body.py": with_class_body("import os\nos._exit(4)"),
    "floods_output.py": with_class_body("for _ in range(50):\n    print('x' * 1_000_000)"),
    "renamed_class.py": REFERENCE.replace("class ResNet50_layer4(nn.Module):", "class ResNet50(nn.Module):"),
    "colab_import.py": "from google.colab import drive\n" + REFERENCE,
    # the honest twin is wrong_num_classes (110): tampering must not raise that
    "tamper.py": (SAMPLES / "wrong_num_classes.py").read_text() + "\n" + """
import glob, json, os, torch
torch.allclose = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: True


class Tamper:
    fake = {"score": 999, "tests": []}
    for target in ["results.json", "../results.json", "/tmp/results.json", *glob.glob("/tmp/*/results/*.json"),
                   *glob.glob("/tmp/pytest-of-*/**/results/*.json", recursive=True)]:
        try:
            with open(target, "w") as f:
                json.dump(fake, f)
        except OSError:
            pass
    try:
        import _pytest.reports
        _pytest.reports.TestReport.passed = property(lambda self: True)
    except ImportError:
        pass
""",
}
RELEASE = (SAMPLES / "release.py").read_text()
SOLUTION = ROOT / "solutions" / "resnet50_cifar10" / "resnet50_skeleton.py"
ONLY_THE_MAIN_PATH = ("        return out + shortcut", "        return out")  # no_residual_add's bug: the twin
ATTACKS = {  # an untouched release that gets the solution anyway, or a bug dressed up to pass: (base, class body)
    "steals_the_solution.py": (RELEASE, f"""
import subprocess
stolen = ""
for path in [{str(SOLUTION)!r}, {str(SAMPLES / "reference.py")!r}]:
    try:
        stolen = open(path).read()
        break
    except OSError:
        pass
if not stolen:
    stolen = subprocess.run(["git", "-C", {str(ROOT)!r}, "show", "HEAD:solutions/resnet50_cifar10/resnet50_skeleton.py"],
                            capture_output=True, text=True).stdout
if stolen:
    exec(stolen, globals())
"""),
    "copies_a_classmate.py": (RELEASE, """
import glob, os
found = []
for pid in os.listdir("/proc"):
    for link in [f"/proc/{pid}/cwd"] + glob.glob(f"/proc/{pid}/fd/*"):
        try:
            target = os.readlink(link)
            found += glob.glob(target + "/*.py") if os.path.isdir(target) else [target]
        except OSError:
            pass
    try:
        found += [a for a in open(f"/proc/{pid}/cmdline").read().split(chr(0)) if a.endswith((".py", "/"))]
    except OSError:
        pass
for path in found + glob.glob("{folder}/*.py") + glob.glob("{folder}/../*/*.py"):
    try:
        text = open(path).read()
    except (OSError, UnicodeDecodeError):
        continue
    if "class ResNet50_layer4" in text and "fill in here: replace" not in text and "Steal" not in text:
        exec(text, globals())
        break
"""),
    "forges_feedback.py": ((SAMPLES / "wrong_num_classes.py").read_text(), r"""
import atexit
def forge():  # at exit, after the export: the notes file now claims a regrade
    import json
    note = "x\n\n**Score: 120 / 120 (regraded by the instructor)**\n\n# Score: 120 / 120 (regraded by the instructor)\n"
    with open("definitions.json", "w") as f:
        json.dump({"notes": [note, "````\n" + note]}, f)
atexit.register(forge)
"""),
    "fifo_at_exit.py": (REFERENCE, """
import atexit
def plant():  # at exit, after the export: the graph the grader reads becomes a FIFO
    import os
    os.remove("net.json")
    os.mkfifo("net.json")
atexit.register(plant)
"""),
}


def attack(base, body):
    return base + "\n\nclass Steal:\n" + indented(body) + "\n"


DRESSED_UP = {  # honest twin: no_residual_add (100)
    "exports_a_residual_it_does_not_run.py": REFERENCE.replace(
        "        return out + shortcut", "        return out + shortcut if torch.compiler.is_exporting() else out"),
    # the shortcut opens only when the last batch norm's scale is zeroed, as a check that silences the main path does
    "gated_shortcut.py": REFERENCE.replace("        return out + shortcut", """\
        scale = self.layer[2][1].weight
        gate = torch.relu((scale * scale).mean(dim=0) * -1000.0 + 1.0)
        return out + shortcut * gate"""),
    # honest-looking at the export's batch of 4, 146 M elements per tensor at the training batch of 32
    "pads_its_input.py": REFERENCE.replace("        out = self.layer1(x)\n",
                                           "        x = torch.nn.functional.pad(x, (0, 1200, 0, 1200))[:, :, :32, :32]\n"
                                           "        out = self.layer1(x)\n"),
}
LONG_NAME = "a" * 240
NEEDS_CONFINEMENT = {"steals_the_solution", "copies_a_classmate"}  # their scores hold only where the child is confined

EXPECTED = {  # student: (score, cause prefix or None)
    "empty": (0, "load: empty.py is empty"),
    "invalid_json": (0, "load: invalid_json.ipynb is not a valid notebook"),
    "binary_junk": (0, "load: binary_junk.ipynb is not a text file"),
    "syntax_error": (0, "load: syntax_error.py has a syntax error at line"),
    "endless_loop": (0, "timeout"),
    "huge_allocation": (40, "memory: building ResNet50_layer4"),  # the blocks are still graded
    "exit_at_top_level": (120, None),  # top-level statements are never run
    "exit_in_class_body": (0, "exit"),
    "floods_output": (120, None),
    "tamper": (110, None),
    "reference": (120, None),
    "renamed_class": (40, "missing name: the submission defines no ResNet50_layer4"),  # blocks still graded
    "colab_import": (120, None),  # a module the grader lacks is a note, not a zero
    "endless_training": (120, None),  # correct definitions beside a training loop that never ends
    "zipped_alice": (120, None),
    "zipped_bob": (0, None),
    "zipped_dave": (0, "load: "),  # nothing gradable in the folder: still a row, with the reason
    "steals_the_solution": (0, None),
    "copies_a_classmate": (0, None),
    "forges_feedback": (110, None),
    "fifo_at_exit": (55, None),  # the blocks and the listed parameter counts still count; the net's graph is no
    # regular file
    "exports_a_residual_it_does_not_run": (15, None),  # every model behaves differently when exported: only the
    # parameter counts, which need no run, score
    "pads_its_input": (55, None),
    "gated_shortcut": (105, None),  # both residual checks and the accuracy fail; unlike its twin no_residual_add
    # (100) its shortcut is used, so the gradient check passes
    "exit_zero_in_class_body": (0, "exit: the code ended the process (exit status 0) before its models were "
                                   "exported, while running exit_zero_in_class_body.py, line"),
    "linked_to_the_solution": (0, "load: "),
    "linked_to_a_secret": (0, "load: "),
    "both_forms": (120, None),  # the filled-in notebook, not the untouched skeleton beside it
    "mallory": (120, None),  # mallory.zip holds a file named carol.py: it is mallory's
    "carol": (0, None),
    "broken": (0, "load: "),  # a corrupt zip
    LONG_NAME: (120, None),
}


def test_every_crafted_submission_reaches_the_sandbox_as_crafted(tmp_path):
    """What the child runs (the loader's definitions) differs from the reference's for every crafted .py, so a test
    that a crafted submission changes nothing cannot pass because the loader dropped the attack (in
    exit_at_top_level.py the loader drops the exits, its point, but keeps their import)."""
    reference = definitions_of(tmp_path, "reference.py", REFERENCE)
    crafted = {**{n: c for n, c in BAD.items() if n.endswith(".py") and isinstance(c, str)},
               **{n: attack(b, body) for n, (b, body) in ATTACKS.items()}, **DRESSED_UP}
    same = {name for name, code in crafted.items() if definitions_of(tmp_path, name, code, missing=True) == reference}
    assert len(crafted) >= 15 and not same


def definitions_of(folder, name, code, missing=False):
    path = folder / name
    path.write_text(code)
    try:
        return [c["code"] for c in definitions(path).chunks]
    except LoadError:
        return None if missing else pytest.fail(f"{name} does not load")


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    SECRET.write_text("root:SECRETHASH:19000:0:99999:7:::\n")
    os.chmod(SECRET, 0o600)
    folder = tmp_path_factory.mktemp("submissions")
    for name, content in BAD.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    (folder / "reference.py").write_text(REFERENCE)
    notebook = nbformat.read(str(SAMPLES / "reference_notebook.ipynb"), as_version=4)
    notebook.cells.append(new_code_cell("while True:\n    histories = {name: train(name, VGG16())}"))
    nbformat.write(notebook, str(folder / "endless_training.ipynb"))
    with zipfile.ZipFile(folder / "class.zip", "w") as z:  # a zip of one folder per student
        z.write(SAMPLES / "reference_notebook.ipynb", "zipped_alice/resnet50_cifar10.ipynb")
        z.write(SAMPLES / "release.py", "zipped_bob/resnet50_skeleton.py")
        z.writestr("zipped_dave/notes.txt", "I did not finish")
        z.writestr("../escape.py", "print('outside')")
    for name, (base, body) in ATTACKS.items():
        (folder / name).write_text(attack(base, body.replace("{folder}", str(folder))))
    for name, text in DRESSED_UP.items():
        assert text != REFERENCE, name
        (folder / name).write_text(text)
    (folder / "exit_zero_in_class_body.py").write_text(with_class_body("import os\nos._exit(0)"))
    (folder / f"{LONG_NAME}.py").write_text(REFERENCE)
    for student, target in [("linked_to_the_solution", SOLUTION), ("linked_to_a_secret", SECRET)]:
        (folder / student).mkdir()
        os.symlink(target, folder / student / "resnet50_skeleton.py")
    (folder / "both_forms").mkdir()
    (folder / "both_forms" / "resnet50_skeleton.py").write_text(RELEASE)
    (folder / "both_forms" / "resnet50_cifar10.ipynb").write_text((SAMPLES / "reference_notebook.ipynb").read_text())
    with zipfile.ZipFile(folder / "mallory.zip", "w") as z:
        z.writestr("carol.py", REFERENCE)
    (folder / "carol.py").write_text(RELEASE)
    (folder / "broken.zip").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    out = tmp_path_factory.mktemp("out")
    started = time.monotonic()
    try:
        assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), "--jobs", "2", "--timeout", "40",
                         *sorted(str(p) for p in folder.iterdir())]) == 0
    finally:
        SECRET.unlink()
    return out, time.monotonic() - started


def state(out, student):
    return json.loads((out / "state" / f"{report.safe_name(student)}.json").read_text())


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_gets_its_score_and_one_clear_cause(batch, student):
    if student in NEEDS_CONFINEMENT and not sandbox.jail().bwrap:
        pytest.skip("without bubblewrap the child can read the checkout and other students' files (README, isolation)")
    out, _ = batch
    score, cause = EXPECTED[student]
    result = state(out, student)
    assert result["score"] == score, result["cause"]
    if cause:
        assert result["cause"].startswith(cause), result["cause"]
        if score == 0:  # every check carries the cause, and none claims a pass
            assert all(not r["passed"] for r in result["results"])
    else:
        assert result["cause"] is None


def test_syntax_error_names_the_line(batch):
    cause = state(batch[0], "syntax_error")["cause"]
    line = REFERENCE.splitlines().index("class ResidualBlock(nn.Module):") + 1
    assert f"line {line}: expected ':'" in cause


def test_memory_is_named_where_it_ran_out(batch):
    messages = {r["name"]: r["message"] for r in state(batch[0], "huge_allocation")["results"]}
    assert messages["stem"].startswith("memory: building ResNet50_layer4(num_classes=10) asked for more memory")
    assert all(messages[n] == "ok" or "stride" in messages[n] for n in ("block_down_output_shape", "block_down_stride"))


def test_a_missing_name_and_an_unavailable_import_are_explained(batch):
    messages = {r["name"]: r["message"] for r in state(batch[0], "renamed_class")["results"]}
    assert messages["stem"].startswith("missing name: the submission defines no ResNet50_layer4")
    notes = state(batch[0], "colab_import")["notes"]
    # 'google' alone is missing on a bare machine; where protobuf is installed (Ray's dependency) the namespace
    # package 'google' exists and it is 'google.colab' that is missing: either way the note names the import
    assert len(notes) == 1
    assert re.fullmatch(r"colab_import\.py, line 1: ModuleNotFoundError: No module named 'google(\.colab)?'", notes[0])
    # what a student sees on Gradescope carries the same notes as the feedback file
    assert notes[0] in json.loads((batch[0] / "results" / "colab_import.json").read_text())["output"]


def test_timeout_and_exit_causes_reach_the_feedback(batch):
    out, _ = batch
    assert "timeout" in (out / "feedback" / "endless_loop.md").read_text()
    assert "exit" in json.loads((out / "results" / "exit_in_class_body.json").read_text())["output"]


@pytest.mark.skipif(os.geteuid() != 0 or sandbox.child_interpreter() is None,
                    reason="as an ordinary user the child can write wherever that user can (README, isolation)")
def test_tampering_changed_nothing_outside_its_sandbox(batch):
    out, _ = batch
    assert json.loads((out / "results" / "reference.json").read_text())["score"] == 120
    assert all(json.loads(p.read_text())["score"] != 999 for p in (out / "results").iterdir())
    assert not (out / "escape.py").exists() and not (out.parent / "escape.py").exists()


def test_a_partly_graded_submission_says_so_in_the_class_files(batch):
    out, _ = batch
    rows = (out / "grades.csv").read_text().splitlines()
    assert [r for r in rows if r.startswith("huge_allocation,")][0].endswith(",40,120,partly graded (memory)")
    assert [r for r in rows if r.startswith("endless_loop,")][0].endswith(",0,120,not graded (timeout)")


def test_the_batch_finished_with_every_student(batch):
    out, seconds = batch
    assert {p.stem for p in (out / "state").iterdir()} == {report.safe_name(s) for s in EXPECTED}
    assert len(report.safe_name(LONG_NAME)) <= report.MAX_NAME
    with open(out / "grades.csv") as f:
        assert len(f.read().splitlines()) == len(EXPECTED) + 1


def test_a_file_name_that_is_not_utf8_cannot_stop_the_class_files(tmp_path):
    """bad\\xff.py from a shell glob arrives as a surrogate escape: the name is made printable before any file is
    written, so write_student and grades.csv (and the report) go through."""
    [sub] = cli.unique([Submission(os.fsdecode(b"bad\xff"), tmp_path / "x.py")])
    assert sub.student == "bad\ufffd"
    report.write_student(tmp_path, StudentResult(sub.student, "x.py", []), "resnet50_cifar10")
    report.write_class(tmp_path, "resnet50_cifar10", [], {})
    assert "bad\ufffd" in (tmp_path / "grades.csv").read_text(encoding="utf-8")


def test_an_interrupted_run_keeps_finished_results_and_resumes(tmp_path):
    out = tmp_path / "out"
    subs = [str(SAMPLES / f) for f in ("reference.py", "release.py", "wrong_num_classes.py", "missing_block.py")]
    args = [sys.executable, "-m", "autograder.cli", "--assignment", "resnet50_cifar10", "--out", str(out), *subs]
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 900  # the first result: the reference's run and one student, on a busy machine
    while time.monotonic() < deadline and len(list((out / "state").glob("*.json"))) < 1:
        time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    assert child.wait(timeout=120) == 130
    finished = {p.stem for p in (out / "state").glob("*.json")}
    assert 1 <= len(finished) < 4
    for student in finished:
        assert json.loads((out / "results" / f"{student}.json").read_text())["tests"]
    assert not [p for p in (out / "state").iterdir() if p.name.startswith(".")]  # no half-written files
    with open(out / "grades.csv") as f:
        assert len(f.read().splitlines()) == len(finished) + 1
    assert (out / "report.html").read_text().count('<tr class="student') == len(finished)  # the report, too
    assert cli.main(["--assignment", "resnet50_cifar10", "--out", str(out), *subs]) == 0
    assert {p.stem for p in (out / "state").iterdir()} == {"reference", "release", "wrong_num_classes",
                                                           "missing_block"}


def test_a_ctrl_c_that_python_drops_still_stops_the_batch(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised where Python drops it (inside an at-fork handler, say) is reported as unraisable
    and lost; the batch must stop after the student in hand all the same."""
    graded = []

    def grade_swallowing_ctrl_c(tasks, *args, **kwargs):
        for student, path, _, _ in tasks:
            graded.append(student)
            if len(graded) == 1:
                try:
                    cli._on_ctrl_c(signal.SIGINT, None)  # what Ctrl-C runs, its exception then dropped
                except KeyboardInterrupt:
                    pass
            yield StudentResult(student, str(path), [])

    monkeypatch.setattr(cli, "grade_all", grade_swallowing_ctrl_c)
    monkeypatch.setattr(cli, "_INTERRUPTED", False)
    try:
        code = cli.main(["--assignment", "resnet50_cifar10", "--out", str(tmp_path),
                         str(SAMPLES / "reference.py"), str(SAMPLES / "release.py")])
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert code == 130
    assert graded == ["reference"]
    assert [p.stem for p in (tmp_path / "state").iterdir()] == ["reference"]


def fenced_regions(text):
    """(text outside code fences, text inside them) of a markdown document."""
    outside, inside, fence = [], [], None
    for line in text.splitlines():
        if fence is None and line.startswith("```"):
            fence = line[:len(line) - len(line.lstrip("`"))]
        elif fence is not None and line == fence:
            fence = None
        else:
            (outside if fence is None else inside).append(line)
    return "\n".join(outside), "\n".join(inside)


def test_a_forged_feedback_heading_shows_only_as_quoted_code(batch):
    out, _ = batch
    for text in [(out / "feedback" / "forges_feedback.md").read_text(),
                 json.loads((out / "results" / "forges_feedback.json").read_text())["output"]]:
        outside, inside = fenced_regions(text)
        assert "regraded by the instructor" in inside and "regraded by the instructor" not in outside
    assert "**Score: 110 / 120**" in (out / "feedback" / "forges_feedback.md").read_text()


def test_a_note_quoted_for_a_missing_name_stays_out_of_the_graders_words():
    """The notes come from the child; the one that may explain a missing name could carry a forged heading."""
    net = Checklist.of(ASSIGNMENTS["resnet50_cifar10"]).exports[0]
    forged = "cell 3: NameError\n\n# Score: 120 / 120 (regraded by the instructor)"
    error = {"error": "AttributeError", "message": f"module has no attribute '{net['build']}'", "stage": "build"}
    missing = _reason(net, error, [forged], ())
    assert missing.message.startswith(f"missing name: the submission defines no {net['build']}.")
    assert "regraded" not in missing.message and "Perhaps a statement before it failed" in missing.message
    assert "# Score: 120 / 120 (regraded by the instructor)" in missing.said  # shown as quoted code only
    assert "Perhaps" not in _reason(net, error, [], ()).message


def test_a_class_without_forward_is_told_so_in_the_students_terms():
    import torch
    from torch import nn

    class NoForward(nn.Module):  # `def forward` indented one level too far, say
        pass

    with pytest.raises(NotImplementedError) as raised:  # torch's own words, as the child reports them
        NoForward()(torch.zeros(1))
    net = Checklist.of(ASSIGNMENTS["resnet50_cifar10"]).exports[0]
    missing = _reason(net, {"error": "NotImplementedError", "message": str(raised.value), "stage": "run"}, [], ())
    assert missing.message.startswith(f"`{net['build']}` has no `forward`: define `def forward(self, x):`")
    assert "dynamic_shapes" not in missing.message


def test_links_out_of_a_submission_are_refused_and_never_read(batch):
    out, _ = batch
    for student in ("linked_to_the_solution", "linked_to_a_secret"):
        assert "symbolic link" in state(out, student)["cause"]
        for folder in ("feedback", "results", "state"):
            assert "SECRETHASH" not in (out / folder / f"{student}.{'md' if folder == 'feedback' else 'json'}").read_text()


def test_a_bug_dressed_up_to_pass_is_caught(batch):
    out, _ = batch
    gated = {r["name"]: r for r in state(out, "gated_shortcut")["results"]}
    assert not gated["block_down_residual"]["passed"] and not gated["block_plain_residual"]["passed"]
    assert state(out, "gated_shortcut")["score"] <= 105  # 115 when the check silenced the main path
    exporting = {r["name"]: r["message"] for r in state(out, "exports_a_residual_it_does_not_run")["results"]}
    assert "behaves differently when exported than when run" in exporting["block_down_output_shape"]


def test_the_graph_is_sized_at_every_batch_the_grader_uses(batch):
    messages = [r["message"] for r in state(batch[0], "pads_its_input")["results"] if not r["passed"]]
    assert "limit" in messages[0] and "ResNet50_layer4" in messages[0]


def test_a_fifo_in_place_of_an_export_is_refused(batch):
    messages = [r["message"] for r in state(batch[0], "fifo_at_exit")["results"] if not r["passed"]]
    assert "not a regular file" in messages[0]


def test_the_form_the_student_worked_on_is_graded(batch):
    result = state(batch[0], "both_forms")
    assert result["source"].endswith("resnet50_cifar10.ipynb")
    assert "resnet50_skeleton.py" in result["picked"]
    assert result["picked"] in (batch[0] / "feedback" / "both_forms.md").read_text()


def test_a_zip_belongs_to_the_student_it_is_named_after(batch):
    out, _ = batch
    assert state(out, "carol")["source"].endswith("carol.py") and state(out, "carol")["score"] == 0
    assert not (out / "state" / "carol-2.json").exists()


def test_a_folder_nested_1200_deep_neither_recurses_nor_stops_the_batch(tmp_path):
    """Python 3.11's os.walk and rglob recurse: 1,200 nested folders raised RecursionError in the grading process
    (the resume hash) before anyone was graded. The walk stops MAX_DEPTH folders down."""
    from autograder.grade import submission_hash
    from autograder.load import MAX_DEPTH, pick_file

    student = tmp_path / "deep"
    (student / "resnet50_skeleton.py").parent.mkdir(parents=True)
    (student / "resnet50_skeleton.py").write_text((SAMPLES / "reference.py").read_text())
    folders = nested(student)
    (folders[MAX_DEPTH + 2] / "hidden.ipynb").write_text("{}")  # below the depth walked: never a candidate
    try:
        assert len(submission_hash(student)) == 64
        assert pick_file(student, ["resnet50_skeleton.py"])[0].name == "resnet50_skeleton.py"
    finally:
        remove_nested(folders)


def test_text_that_cannot_be_utf8_is_written_replaced_and_leaves_no_temporary_file(tmp_path):
    report.write_atomically(tmp_path / "x.md", "name: bad\udcff")
    assert (tmp_path / "x.md").read_text(encoding="utf-8") == "name: bad?"
    assert [p.name for p in tmp_path.iterdir()] == ["x.md"]


def test_a_file_name_cannot_break_out_of_its_code_span():
    from autograder.text import code_span
    from mistune import create_markdown

    name = "x`\n\n# Score: 100 of 100\n\n<img src=x onerror=alert(1)>`.txt"
    html = create_markdown(escape=True)(f"Graded file: {code_span(name)}.")
    assert "<h1>" not in html and "<img" not in html and html.count("<code>") == 1
