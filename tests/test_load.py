"""Load keeps definitions only, blanks the rest with line numbers kept, and says what it could not read; it
never follows a link, never blocks, and turns a broken zip into an error for its student instead of a crash."""
import os
import signal
import stat
import zipfile
from contextlib import contextmanager

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder import load
from autograder.cli import unique
from autograder.load import (LoadError, allowed_constructors, definitions, definitions_only, find_submissions,
                             pick_file)

PREFERRED = ["resnet50_skeleton.py", "resnet50_cifar10.ipynb"]

CODE = '''import torch
from torch import nn
NUM_CLASSES = 10
CONFIG = [64, "M", 128]
model = build()
for epoch in range(100):
    train()
print("hello")


@decorated
def helper(x):
    return x


class Net(nn.Module):
    pass


if __name__ == "__main__":
    main()
'''


def test_only_definitions_survive_and_lines_stay_put():
    kept = definitions_only(CODE, "x.py").splitlines()
    assert kept[:4] == CODE.splitlines()[:4]
    assert kept[4:8] == ["", "", "", ""]  # a call, a loop, a print
    assert kept[10:13] == ["@decorated", "def helper(x):", "    return x"]
    assert kept[15] == "class Net(nn.Module):"
    assert "main()" not in "\n".join(kept) and "build()" not in "\n".join(kept)


def test_notebook_magics_and_broken_cells(tmp_path):
    nb = new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("!pip install torch\n%matplotlib inline\nimport torch"),
        new_code_cell("%%bash\necho hi"),
        new_code_cell("%%time\nclass A:\n    pass"),
        new_code_cell("for i in range(:\n    pass"),
        new_code_cell("while True:\n    train()"),
    ])
    path = tmp_path / "s.ipynb"
    nbformat.write(nb, str(path))
    result = definitions(path)
    assert [c["label"] for c in result.chunks] == ["cell 2", "cell 4", "cell 6"]
    assert result.chunks[0]["code"].splitlines() == ["", "", "import torch"]
    assert "class A:" in result.chunks[1]["code"]
    assert result.chunks[2]["code"].strip() == ""
    assert len(result.notes) == 1 and result.notes[0].startswith("cell 5 was skipped: syntax error at line 1")


@pytest.mark.parametrize("name, content, message", [
    ("a.py", b"", "is empty"),
    ("a.py", b"\xff\xfe\x00junk", "not a text file"),
    ("a.ipynb", b"{not json", "not a valid notebook (line 1, column 2: Expecting property name"),
    ("a.py", b"def f(:\n", "syntax error at line 1"),
    ("a.py", b"x = " + b"-" * 200_000 + b"1\n", "syntax error: too deeply nested to parse"),  # was a MemoryError
    ("a.ipynb", b"[" * 100_000, "not a valid notebook (nested too deeply)"),  # was a RecursionError
    ("a.txt", b"hello", "submit a .ipynb notebook or a .py file"),
])
def test_unreadable_submissions_say_why(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        definitions(path)


def test_a_students_folder_picks_the_graded_file(tmp_path):
    folder = tmp_path / "alice"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / ".ipynb_checkpoints" / "resnet50_skeleton.py").write_text("old")
    (folder / "notes.py").write_text("x = 1")
    (folder / "resnet50_skeleton.py").write_text("x = 2")
    assert pick_file(folder, ["resnet50_skeleton.py"]) == (folder / "resnet50_skeleton.py", None)
    (folder / "resnet50_skeleton.py").unlink()
    assert pick_file(folder, ["resnet50_skeleton.py"]) == (folder / "notes.py", None)  # the only candidate
    (folder / "other.ipynb").write_text("{}")
    with pytest.raises(LoadError, match="several candidates"):
        pick_file(folder, ["resnet50_skeleton.py"])


def test_files_folders_and_zips_name_the_students(tmp_path):
    (tmp_path / "bob").mkdir()
    (tmp_path / "carol.ipynb").write_text("{}")
    with zipfile.ZipFile(tmp_path / "class.zip", "w") as z:
        z.writestr("submissions/dan/resnet50_skeleton.py", "x = 1")
        z.writestr("submissions/erin/resnet50_cifar10.ipynb", "{}")
        z.writestr("../../evil.py", "x = 1")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    found = find_submissions([tmp_path / "bob", tmp_path / "carol.ipynb", tmp_path / "class.zip"], scratch)
    assert [s.student for s in found] == ["bob", "carol", "dan", "erin"]
    assert not (tmp_path / "evil.py").exists() and not (tmp_path.parent / "evil.py").exists()


@contextmanager
def no_longer_than(seconds):
    """Fail instead of hanging when a read blocks (on a FIFO, say)."""
    def hung(*_):
        raise TimeoutError(f"blocked for more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_link_in_a_folder_is_refused_and_never_read(tmp_path, assignment):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$SECRETHASH:19000:0:99999:7:::\n")  # a syntax error that used to be echoed
    folder = tmp_path / "mallory"
    folder.mkdir()
    (folder / "resnet50_skeleton.py").symlink_to(secret)
    with pytest.raises(LoadError) as caught:
        pick_file(folder, PREFERRED)
    message = str(caught.value)
    assert "`resnet50_skeleton.py` is a symbolic link that leads outside your submission" in message
    assert "SECRET" not in message and "root" not in message and str(secret) not in message
    # the reference solution, linked in: refused, not graded
    (folder / "resnet50_skeleton.py").unlink()
    (folder / "resnet50_skeleton.py").symlink_to(assignment.reference_module)
    with pytest.raises(LoadError, match="symbolic link that leads outside"):
        pick_file(folder, PREFERRED)
    # the reader itself refuses a link (O_NOFOLLOW), whoever asks
    with pytest.raises(LoadError, match="is a symbolic link") as caught:
        definitions(folder / "resnet50_skeleton.py")
    assert "SECRET" not in str(caught.value)
    # a link inside the folder is refused too, without the word "outside"
    (folder / "resnet50_skeleton.py").unlink()
    (folder / "mine.txt").write_text("x = 1\n")
    (folder / "resnet50_skeleton.py").symlink_to("mine.txt")
    with pytest.raises(LoadError, match="symbolic link: submit the file itself") as caught:
        pick_file(folder, PREFERRED)
    assert "outside" not in str(caught.value)


def test_a_link_beside_a_real_file_is_passed_over_with_a_note(tmp_path, assignment):
    folder = tmp_path / "mallory"
    folder.mkdir()
    (folder / "resnet50_skeleton.py").symlink_to(assignment.reference_module)
    (folder / "resnet50_cifar10.ipynb").write_bytes(assignment.student_notebook.read_bytes())
    path, note = pick_file(folder, PREFERRED)
    assert path == folder / "resnet50_cifar10.ipynb"
    assert note == "Graded `resnet50_cifar10.ipynb`: `resnet50_skeleton.py` in the same folder is a symbolic link."


def test_linked_folders_are_not_walked(tmp_path, assignment):
    outside = tmp_path / "solutions"
    outside.mkdir()
    (outside / "resnet50_skeleton.py").write_bytes(assignment.reference_module.read_bytes())
    folder = tmp_path / "mallory"
    folder.mkdir()
    (folder / "code").symlink_to(outside, target_is_directory=True)
    (folder / "mine.py").write_text("x = 1\n")
    assert pick_file(folder, PREFERRED) == (folder / "mine.py", None)
    (folder / "mine.py").unlink()
    with pytest.raises(LoadError, match="holds no .ipynb or .py file"):
        pick_file(folder, PREFERRED)


def test_fifos_and_special_files_are_never_opened_blocking(tmp_path):
    folder = tmp_path / "mallory"
    folder.mkdir()
    os.mkfifo(folder / "resnet50_skeleton.py")
    (folder / "mine.py").write_text("x = 1\n")
    with no_longer_than(10):
        assert pick_file(folder, PREFERRED) == (folder / "mine.py", None)  # the FIFO is no candidate
        with pytest.raises(LoadError, match="not a regular file"):
            definitions(folder / "resnet50_skeleton.py")
        (folder / "dir.py").mkdir()
        with pytest.raises(LoadError, match="not a regular file"):
            definitions(folder / "dir.py")


def test_files_over_the_cap_are_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MAX_SUBMISSION_BYTES", 1000)
    path = tmp_path / "big.py"
    path.write_text("x = 1\n" * 1000)
    with pytest.raises(LoadError, match="the limit is"):
        definitions(path)


def test_the_filled_in_form_is_graded_over_the_untouched_skeleton(tmp_path, assignment):
    samples = assignment.reference_module.parent / "samples"
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "resnet50_skeleton.py").write_bytes(assignment.student_module.read_bytes())  # 7 stubs
    (folder / "resnet50_cifar10.ipynb").write_bytes((samples / "reference_notebook.ipynb").read_bytes())
    (folder / "utils.py").write_text("def helper():\n    return 1\n")  # no stubs, but never competes
    path, note = pick_file(folder, PREFERRED)
    assert path == folder / "resnet50_cifar10.ipynb"
    assert note == ("Graded `resnet50_cifar10.ipynb`: `resnet50_skeleton.py` in the same folder still has 7 "
                    "'fill in here' stubs.")
    # the other way round: the filled .py beats the untouched notebook, whose text cells say "fill in here" too
    (folder / "resnet50_skeleton.py").write_bytes(assignment.reference_module.read_bytes())
    (folder / "resnet50_cifar10.ipynb").write_bytes(assignment.student_notebook.read_bytes())
    assert pick_file(folder, PREFERRED) == (folder / "resnet50_skeleton.py", None)
    # a tie keeps the given order
    (folder / "resnet50_cifar10.ipynb").write_bytes((samples / "reference_notebook.ipynb").read_bytes())
    assert pick_file(folder, PREFERRED) == (folder / "resnet50_skeleton.py", None)
    # one stub left in the .py, none in a notebook that is not JSON: the .py is graded (the notebook cannot be)
    (folder / "resnet50_skeleton.py").write_text('def f():\n    raise NotImplementedError("fill in here: x")\n')
    (folder / "resnet50_cifar10.ipynb").write_text("{not json")
    assert pick_file(folder, PREFERRED) == (folder / "resnet50_skeleton.py", None)


def test_without_a_preferred_name_the_fewest_stubs_win_or_it_is_ambiguous(tmp_path, assignment):
    folder = tmp_path / "bob"
    folder.mkdir()
    (folder / "old.py").write_bytes(assignment.student_module.read_bytes())
    (folder / "new.py").write_bytes(assignment.reference_module.read_bytes())
    path, note = pick_file(folder, PREFERRED)
    assert path == folder / "new.py"
    assert note == "Graded `new.py`: `old.py` in the same folder still has 7 'fill in here' stubs."
    (folder / "newer.py").write_bytes(assignment.reference_module.read_bytes())
    with pytest.raises(LoadError, match="several candidates"):
        pick_file(folder, PREFERRED)


def test_file_names_in_the_choice_note_are_code_spans_a_name_cannot_leave(tmp_path, assignment):
    """A name is the student's to choose: markdown in it (a heading after a line break, a backtick run) stays text."""
    folder = tmp_path / "mallory"
    folder.mkdir()
    hostile = "x\n# Score: 120 ``y``.py"
    (folder / hostile).write_bytes(assignment.student_module.read_bytes())  # 7 stubs
    (folder / "new.py").write_bytes(assignment.reference_module.read_bytes())
    path, note = pick_file(folder, PREFERRED)
    assert path == folder / "new.py"
    assert note == "Graded `new.py`: ```x?# Score: 120 ``y``.py``` in the same folder still has 7 'fill in here' stubs."
    (folder / "new.py").write_bytes(assignment.student_module.read_bytes())  # now a tie: the student must choose
    with pytest.raises(LoadError) as caught:
        pick_file(folder, PREFERRED)
    assert "(`new.py`, ```x?# Score: 120 ``y``.py```)" in str(caught.value) and "\n" not in str(caught.value)


def _zip_bytes(entries) -> bytes:
    """A zip in memory: entries are (name, content) or ZipInfo-and-content pairs."""
    import io
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, content in entries:
            z.writestr(name, content)
    return buffer.getvalue()


def _find(tmp_path, *names):
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return find_submissions([tmp_path / n for n in names], scratch)


def _bad_crc(data: bytes) -> bytes:
    start = data.index(b"x = 1")  # stored uncompressed: change a byte of the content, not of the headers
    return data[:start] + b"y" + data[start + 1:]


@pytest.mark.parametrize("make, expected", [
    (lambda: b"hello, this is no zip", "mallory.zip is not a readable zip file"),
    (lambda: _zip_bytes([("resnet50_skeleton.py", "x = 1\n" * 50)])[:60], "mallory.zip is not a readable zip file"),
    (lambda: _bad_crc(_zip_bytes([("resnet50_skeleton.py", "x = 1\n")])), "Bad CRC-32"),
    (lambda: _zip_bytes([(f"f{i}.py", "") for i in range(6)]), "holds 6 entries; the limit is 5"),
    (lambda: _zip_bytes([("resnet50_skeleton.py", "x" * 3000)]), "unpacks to"),
])
def test_a_broken_or_oversized_zip_is_an_error_for_its_student(tmp_path, monkeypatch, make, expected):
    monkeypatch.setattr(load, "MAX_ZIP_ENTRIES", 5)
    monkeypatch.setattr(load, "MAX_ZIP_BYTES", 2000)
    (tmp_path / "mallory.zip").write_bytes(make())
    (tmp_path / "bob.py").write_text("x = 1\n")
    found = _find(tmp_path, "mallory.zip", "bob.py")
    assert [(s.student, s.error is None) for s in found] == [("mallory", False), ("bob", True)]
    assert expected in found[0].error


def test_a_zip_that_raises_anything_is_an_error_too(tmp_path, monkeypatch):
    (tmp_path / "mallory.zip").write_bytes(_zip_bytes([("resnet50_skeleton.py", "x = 1\n")]))

    def encrypted(*_, **__):
        raise RuntimeError("File 'resnet50_skeleton.py' is encrypted, password required for extraction")
    monkeypatch.setattr(zipfile.ZipFile, "open", encrypted)
    [mallory] = _find(tmp_path, "mallory.zip")
    assert mallory.student == "mallory" and "could not be unpacked (RuntimeError: File" in mallory.error


def test_a_huge_zip_index_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MAX_ZIP_ENTRIES", 2)  # a 2 KiB index at most
    (tmp_path / "mallory.zip").write_bytes(_zip_bytes([(f"{i:04}.py", "") for i in range(100)]))
    monkeypatch.setattr(zipfile.ZipFile, "__init__", lambda *_: pytest.fail("the index was read"))
    [mallory] = _find(tmp_path, "mallory.zip")
    assert "holds too many entries; the limit is 2" in mallory.error


def test_every_student_of_a_class_zip_is_found_even_with_nothing_gradable(tmp_path, monkeypatch):
    monkeypatch.setattr(load, "MAX_SUBMISSION_BYTES", 1000)
    link = zipfile.ZipInfo("frank/resnet50_skeleton.py")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "class.zip", "w") as z:
        z.writestr("dave/dave.txt", "my answers")
        z.writestr("erin/erin.pdf", "%PDF")
        z.writestr(link, "/etc/shadow")
        z.writestr("gina/resnet50_skeleton.py", "x = 1\n" * 200)
        z.writestr("hank/resnet50_cifar10.ipynb", "{}")
        z.writestr("hank/notes.txt", "hello")
        z.writestr("ivan/", "")
    found = {s.student: s for s in _find(tmp_path, "class.zip")}
    assert sorted(found) == ["dave", "erin", "frank", "gina", "hank", "ivan"]
    assert found["hank"].error is None and pick_file(found["hank"].path, PREFERRED)[0].name == "resnet50_cifar10.ipynb"
    assert found["dave"].error == ("nothing to grade in your folder dave/ in class.zip: dave.txt is not a notebook or "
                                   ".py file. Submit your .ipynb notebook or .py file.")
    assert "erin.pdf is not a notebook or .py file" in found["erin"].error
    assert "resnet50_skeleton.py is a symbolic link" in found["frank"].error
    assert not os.path.lexists(found["frank"].path / "resnet50_skeleton.py")  # never created, as a link or not
    assert "resnet50_skeleton.py is 0 MB; the limit is" in found["gina"].error
    assert "it is empty" in found["ivan"].error


def test_a_zip_of_folders_cannot_take_a_classmates_name(tmp_path):
    """mallory.zip holding folders carol/ and x/ reads as a class zip: its carol yields to carol's own file."""
    (tmp_path / "mallory.zip").write_bytes(_zip_bytes([("carol/resnet50_skeleton.py", "x = 1\n"),
                                                       ("x/resnet50_skeleton.py", "x = 1\n")]))
    (tmp_path / "carol.py").write_text("x = 2\n")
    named = {s.student: s.path for s in unique(_find(tmp_path, "mallory.zip", "carol.py"))}
    assert named["carol"] == tmp_path / "carol.py"
    assert named["carol-2"].name == "carol" and set(named) == {"carol", "carol-2", "x"}


def test_a_zip_of_files_is_the_zips_student(tmp_path):
    """mallory.zip holding carol.py is mallory's work: it must not be graded, and written, as carol's."""
    (tmp_path / "mallory.zip").write_bytes(_zip_bytes([("carol.py", "x = 1\n")]))
    (tmp_path / "carol.py").write_text("x = 2\n")
    found = _find(tmp_path, "mallory.zip", "carol.py")
    assert [s.student for s in found] == ["mallory", "carol"]
    assert found[0].error is None and pick_file(found[0].path, PREFERRED) == (found[0].path / "carol.py", None)
    # a student's folder zipped (one wrapping folder), with stray files: still one student, named after the zip
    (tmp_path / "alice.zip").write_bytes(_zip_bytes([
        ("alice_hw/resnet50_cifar10.ipynb", "{}"), ("alice_hw/README.txt", "hi"),
        ("alice_hw/.ipynb_checkpoints/resnet50_cifar10-checkpoint.ipynb", "{}"),
        ("__MACOSX/alice_hw/._resnet50_cifar10.ipynb", "junk"), ("/abs/evil.py", "x = 1"),
        ("alice_hw/../../evil.py", "x = 1")]))
    [alice] = _find(tmp_path, "alice.zip")
    assert alice.student == "alice" and alice.error is None
    assert sorted(p.relative_to(alice.path).as_posix() for p in alice.path.rglob("*")) == ["resnet50_cifar10.ipynb"]
    # folders beside a loose file at the top: not a class zip, so one student named after the zip
    (tmp_path / "class.zip").write_bytes(_zip_bytes([("dan/a.py", "x = 1"), ("erin/b.py", "x = 1"),
                                                     ("index.html", "")]))
    assert [s.student for s in _find(tmp_path, "class.zip")] == ["class"]


def test_a_py_says_which_top_level_statements_grading_does_not_run(tmp_path):
    script = tmp_path / "mine.py"
    script.write_text('"""My ResNet."""\nimport torch\nN = 3\nmodel = torch.nn.Linear(2, 2)\nfor epoch in range(200):\n'
                      '    pass\nprint("done")\n\n\nif __name__ == "__main__":\n    print("main")\n')
    note, = definitions(script).notes
    assert note == ("mine.py: not run when grading, which reads definitions only: line 4: model = "
                    "torch.nn.Linear(2, 2); line 5: for epoch in range(200):; line 7: print(\"done\")")
    script.write_text('"""Only definitions."""\nimport torch\n\n\nif __name__ == "__main__":\n    print(1)\n')
    assert definitions(script).notes == []


WILD_IMPORTS = "import torch\nfrom torch import nn\nfrom functools import partial\n"
WILD_CLASS = '''class Conv2dAuto(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
'''
WILD_PARTIAL = "conv3x3 = partial(Conv2dAuto, kernel_size=3, bias=False)"


def _defined(chunks) -> dict:
    """The kept code run as grading runs it: chunk after chunk in one namespace."""
    namespace = {}
    for chunk in chunks:
        exec(compile(chunk["code"], chunk["label"], "exec"), namespace)
    return namespace


def _working_conv3x3(namespace):
    import torch

    conv = namespace["conv3x3"](8, 16)
    assert conv.padding == (1, 1) and conv.bias is None
    assert conv(torch.zeros(1, 8, 5, 5)).shape == (1, 16, 5, 5)


def test_a_partial_from_resnet_code_in_the_wild_is_kept_and_works(tmp_path):
    """FrancescoSaverioZuppichini/ResNet's `conv3x3 = partial(Conv2dAuto, ...)`, in a .py and across notebook cells."""
    script = tmp_path / "resnet.py"
    script.write_text(WILD_IMPORTS + WILD_CLASS + WILD_PARTIAL + "\nmodel = nn.Linear(3, 4)\nprint(model)\n")
    [chunk] = definitions(script).chunks
    kept = chunk["code"].splitlines()
    assert kept[7] == WILD_PARTIAL and kept[8:] == ["", ""]  # on its own line; the model and the print blanked
    namespace = _defined([chunk])
    _working_conv3x3(namespace)
    assert "model" not in namespace
    cells = [WILD_IMPORTS, WILD_CLASS, "def broken(:\n", f"\n{WILD_PARTIAL}\nnet = nn.Sequential(conv3x3(3, 8))"]
    path = tmp_path / "resnet.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), str(path))
    result = definitions(path)
    assert [c["label"] for c in result.chunks] == ["cell 1", "cell 2", "cell 4"]  # the broken cell: a note
    assert result.chunks[2]["code"].splitlines() == ["", WILD_PARTIAL, ""]
    _working_conv3x3(_defined(result.chunks))
    # partial rebound in any cell, even a later one, makes the call unsafe
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells + ["partial = print"]]), str(path))
    assert definitions(path).chunks[2]["code"].strip() == ""


def test_the_not_run_note_skips_a_kept_partial_but_names_a_blanked_call(tmp_path):
    script = tmp_path / "resnet.py"
    script.write_text(WILD_IMPORTS + WILD_CLASS + WILD_PARTIAL + "\nmodel = nn.Linear(3, 4)\n")
    note, = definitions(script).notes
    assert note == "resnet.py: not run when grading, which reads definitions only: line 9: model = nn.Linear(3, 4)"


def _kept(source: str) -> str:
    return definitions_only(source, "x.py", allowed_constructors([source]))


@pytest.mark.parametrize("source", [
    "from functools import partial\nf = partial(g, 3, k=4, *ARGS, **KW)",
    "from functools import partial\ndef h():\n    return partial(g)\nf = partial(g)",  # read, not rebound
    "from functools import partial as p\nf = p(g)",
    "import functools\nf = functools.partial(g, key=lambda x: x[0])",
    "import functools as ft\nf: Callable = ft.partial(g)",
    "from collections import namedtuple\nPoint = namedtuple('Point', ['x', 'y'])",
    "import collections\nPoint = collections.namedtuple('Point', 'x y')",
])
def test_an_imported_partial_or_namedtuple_whose_arguments_call_nothing_is_kept(source):
    assert _kept(source).splitlines()[-1] == source.splitlines()[-1]
    assert definitions_only(source, "x.py").splitlines()[-1] == ""  # callers that allow nothing: as before


@pytest.mark.parametrize("source", [
    "from functools import partial\ndef partial(*a):\n    train()\nf = partial(g)",  # shadowed by a def
    "from functools import partial\npartial = train\nf = partial(g)",  # by an assignment
    "from functools import partial\ndef h():\n    global partial\n    partial = train\nf = partial(g)",
    "from functools import partial\nfrom mytools import partial\nf = partial(g)",  # by another import
    "from functools import partial\nfrom torch import *\nf = partial(g)",  # perhaps by a star import
    "import functools\nfunctools.partial = train\nf = functools.partial(g)",  # the attribute replaced
    "from mytools import partial\nf = partial(g)",  # not functools'
    "f = partial(g)",  # not imported at all
    "P = namedtuple('P', 'x y')",
    "from functools import partial\nf = functools.partial(g)",  # functools itself never imported
    "from functools import partial\nf = partial(g, x=train())",  # a nested call
    "from functools import partial\nf = partial(g, *load())",
    "from functools import partial\nf = partial(g, key=lambda: train())",
    "from functools import partial\nf = partial(g)(3)",  # calls g
    "from functools import partial\nCONFIG[build()] = partial(g)",  # the target calls
    "x: train() = 1",  # the annotation calls
    "from functools import partial\nmodel = resnet18()",
    "from torch import nn\nnet = nn.Linear(3, 4)",
    "from torch import nn\nnet = nn.Sequential(nn.ReLU())",
    "x = list(range(10))",
    "from functools import partial\nprint(partial)",
    "from functools import partial\nfor epoch in range(3):\n    train()",
])
def test_calls_that_could_run_the_students_code_or_allocate_stay_blanked(source):
    kept = _kept(source).splitlines()
    assert len(kept) == len(source.splitlines()) and kept[-1] == ""


@pytest.mark.parametrize("code", [
    "EPOCHS = 10; history = train(model, EPOCHS)",
    "train(); X = 1",
    "import torch; model = torch.nn.Linear(3, 4)",
    "history = train(model,\n                epochs=10); EPOCHS = 10",
    "X = [1,\n     2]; train()",
])
def test_a_definition_sharing_a_line_with_a_call_is_blanked_with_it(code):
    """Lines are kept whole: a definition on a line with a call would run the call, or keep half a statement."""
    kept = definitions_only(code, "x.py")
    assert kept.strip() == "" and kept.count("\n") == code.count("\n") + 1


def test_definitions_on_lines_of_their_own_beside_such_a_line_are_kept():
    code = "import torch\nEPOCHS = 10; train()\nCLASSES = 10\n"
    assert definitions_only(code, "x.py").splitlines() == ["import torch", "", "CLASSES = 10"]
