"""Load keeps definitions only, blanks the rest with line numbers kept, and says what it could not read."""
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder.load import LoadError, definitions, definitions_only, find_submissions, pick_file

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
    assert pick_file(folder, ["resnet50_skeleton.py"]).name == "resnet50_skeleton.py"
    (folder / "resnet50_skeleton.py").unlink()
    assert pick_file(folder, ["resnet50_skeleton.py"]).name == "notes.py"  # the only candidate
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
