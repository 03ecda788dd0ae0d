"""`make demo`: release every assignment, grade the shipped sample submissions and print the tables, then say where
each class report is and write each assignment's Gradescope autograder.zip.

`make reference-run` (`--notebook`) instead executes the instructor notebook top to bottom in a Jupyter kernel
with a small budget on the synthetic set: what a student's training run looks like, curves included. It leaves the
release alone. Any variable KIT_<NAME> in the environment replaces the notebook setting NAME (KIT_DATA_DIR: other
data, real CIFAR-10 say; KIT_EPOCHS=5; KIT_OUTPUT_DIR: where the curves and history go); the notebook itself never
reads the environment (see autograder.notebooks.with_settings).
"""
import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path

import nbformat

from . import cli
from .assignments import ASSIGNMENTS, ROOT
from .data import describe_all, ensure_stand_ins
from .notebooks import execute, read, stdout_of, with_settings
from .release import release

PREFIX = "KIT_"
NOTEBOOK_BUDGET = {"EPOCHS": 3, "TRAIN_SUBSET": 2000, "TEST_SUBSET": 500, "BATCH_SIZE": 32, "OPTIMIZER": "adam",
                   "LR": 0.001}
PATHS = ("DATA_DIR", "OUTPUT_DIR")  # relative to where you ran the demo, not to the notebook's working folder


def settings_from_environment(environ=None) -> dict:
    """KIT_<NAME>=value -> {NAME: value}, the value read as a Python literal when it is one ("3" -> 3, "0.01" ->
    0.01, "False" -> False), else kept as text ("adam", a path)."""
    settings = {}
    for key, text in (os.environ if environ is None else environ).items():
        if key.startswith(PREFIX):
            try:
                settings[key[len(PREFIX):]] = ast.literal_eval(text)
            except (ValueError, TypeError, SyntaxError):
                settings[key[len(PREFIX):]] = text
    return settings


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def notebook_run(assignment, data_dir, out: Path) -> bool:
    """Execute the instructor notebook in `out` with its small budget (the assignment's own, else NOTEBOOK_BUDGET)
    on `data_dir`, KIT_* variables overriding; True when every model's training loss fell."""
    settings = {**(assignment.reference_run or NOTEBOOK_BUDGET), "DATA_DIR": str(data_dir), "OUTPUT_DIR": str(out),
                "DOWNLOAD": False,
                **settings_from_environment()}
    for name in PATHS:
        settings[name] = str(Path(str(settings[name])).resolve())
    written = Path(settings["OUTPUT_DIR"])  # where the notebook saves history.json and curves.png
    started = time.monotonic()

    def show(cell, cell_index, execute_reply):
        text = stdout_of(cell)
        if text:
            print(f"  [cell {cell_index}, {time.monotonic() - started:5.1f} s]\n" + text.rstrip(), flush=True)

    executed = execute(with_settings(read(assignment.source), settings), cwd=out, on_cell_executed=show)
    nbformat.write(executed, str(out / assignment.notebook.replace(".ipynb", ".executed.ipynb")))
    result = json.loads((written / "history.json").read_text())
    falling = True
    print(f"\n  on {result['data']}:")
    for name, h in result["histories"].items():
        first, last = h["train_loss"][0], h["train_loss"][-1]
        falling &= last < first
        print(f"  {name:>20}: train loss {first:.3f} -> {last:.3f} ({'falling' if last < first else 'NOT falling'}), "
              f"test accuracy {h['test_acc'][-1]:.1f}%")
    print(f"  curves: {shown(written / 'curves.png')}")
    return falling


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", action="store_true",
                        help="run the instructor notebook instead of grading (the release is left alone)")
    args = parser.parse_args(argv)

    if not args.notebook:
        print("== release: instructor notebooks -> student notebooks (nbgrader) and samples", flush=True)
        for assignment in ASSIGNMENTS.values():
            print(f"  {assignment.name}: {len(release(assignment))} files written")

    ok = True
    for assignment in ASSIGNMENTS.values():
        if args.notebook:
            data_dir = os.environ.get(f"{PREFIX}DATA_DIR") or ensure_stand_ins(ROOT / "data" / "synthetic")
            print(f"\n== reference run of {assignment.notebook} on {describe_all(data_dir)}", flush=True)
            ok &= notebook_run(assignment, data_dir, ROOT / "out" / "reference-run" / assignment.name)
        else:
            samples = sorted(str(p) for p in assignment.samples_dir.iterdir())
            print(f"\n== autograde {assignment.name}: {len(samples)} sample submissions", flush=True)
            ok &= cli.main(["--assignment", assignment.name, "--out", str(ROOT / "out" / "demo" / assignment.name),
                            "--force", "--jobs", "2", *samples]) == 0
    if not args.notebook:
        from .gradescope import build_all

        print("\n== class reports (open in a browser):")
        for assignment in ASSIGNMENTS.values():
            print(f"  {shown(ROOT / 'out' / 'demo' / assignment.name / 'report.html')}")
        print("== Gradescope autograder zips (one per assignment: upload it as the assignment's autograder):")
        for path in build_all(ROOT / "out" / "gradescope"):
            print(f"  {shown(path)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
