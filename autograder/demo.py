"""`make demo`: release every assignment, then grade the shipped sample submissions and print the table.

`make reference-run` (`--notebook`) instead executes the instructor notebook top to bottom in a Jupyter kernel
with a small budget on the synthetic set: what a student's training run looks like, curves included. KIT_DATA_DIR
points it at other data (real CIFAR-10, say); any KIT_* variable overrides its budget.
"""
import argparse
import json
import os
import sys
import time

import nbformat

from . import cli
from .assignments import ASSIGNMENTS, ROOT
from .data import describe, ensure_synthetic_cifar10
from .notebooks import execute, read, stdout_of
from .release import release

NOTEBOOK_BUDGET = {
    "KIT_EPOCHS": "3", "KIT_TRAIN_SUBSET": "2000", "KIT_TEST_SUBSET": "500", "KIT_BATCH_SIZE": "32",
    "KIT_OPTIMIZER": "adam", "KIT_LR": "0.001",
}


def notebook_run(assignment, data_dir, out):
    env = {**NOTEBOOK_BUDGET, "KIT_DATA_DIR": str(data_dir), "KIT_OUTPUT_DIR": str(out), "KIT_DOWNLOAD": "0"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("KIT_")})
    started = time.monotonic()

    def show(cell, cell_index, execute_reply):
        text = stdout_of(cell)
        if text:
            print(f"  [cell {cell_index}, {time.monotonic() - started:5.1f} s]\n" + text.rstrip(), flush=True)

    executed = execute(read(assignment.source), cwd=out, env=env, on_cell_executed=show)
    nbformat.write(executed, str(out / assignment.notebook.replace(".ipynb", ".executed.ipynb")))
    result = json.loads((out / "history.json").read_text())
    falling = True
    print(f"\n  on {result['data']}:")
    for name, h in result["histories"].items():
        first, last = h["train_loss"][0], h["train_loss"][-1]
        falling &= last < first
        print(f"  {name:>20}: train loss {first:.3f} -> {last:.3f} ({'falling' if last < first else 'NOT falling'}), "
              f"test accuracy {h['test_acc'][-1]:.1f}%")
    print(f"  curves: {(out / 'curves.png').relative_to(ROOT)}")
    return falling


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", action="store_true", help="run the instructor notebook instead of grading")
    args = parser.parse_args(argv)

    print("== release: instructor notebooks -> student notebooks (nbgrader) and samples", flush=True)
    for assignment in ASSIGNMENTS.values():
        print(f"  {assignment.name}: {len(release(assignment))} files written")

    ok = True
    for assignment in ASSIGNMENTS.values():
        if args.notebook:
            data_dir = os.environ.get("KIT_DATA_DIR") or ensure_synthetic_cifar10(ROOT / "data" / "synthetic")
            print(f"\n== reference run of {assignment.notebook} on {describe(data_dir)}", flush=True)
            ok &= notebook_run(assignment, data_dir, ROOT / "out" / "reference-run" / assignment.name)
        else:
            samples = sorted(str(p) for p in (assignment.source.parent / "samples").iterdir())
            print(f"\n== autograde {assignment.name}: {len(samples)} sample submissions", flush=True)
            ok &= cli.main(["--assignment", assignment.name, "--out", str(ROOT / "out" / "demo" / assignment.name),
                            "--force", "--jobs", "2", *samples]) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
