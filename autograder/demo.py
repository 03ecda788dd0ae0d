"""`make demo`: release every assignment, then a short run of the reference notebook on the synthetic set.

The run is the instructor notebook itself, executed top to bottom in a Jupyter kernel with a small budget, so
what the demo shows is what a student's notebook does. KIT_DATA_DIR, when set, points it at other data (real
CIFAR-10, say); any other KIT_* variable overrides the budget below.
"""
import json
import os
import sys
import time

import nbformat

from .assignments import ASSIGNMENTS, ROOT
from .data import describe, ensure_synthetic_cifar10
from .notebooks import execute, read, stdout_of
from .release import release

DEMO_BUDGET = {
    "KIT_EPOCHS": "3", "KIT_TRAIN_SUBSET": "2000", "KIT_TEST_SUBSET": "500", "KIT_BATCH_SIZE": "32",
    "KIT_OPTIMIZER": "adam", "KIT_LR": "0.001",
}


def reference_run(assignment, data_dir, out):
    env = {**DEMO_BUDGET, "KIT_DATA_DIR": str(data_dir), "KIT_OUTPUT_DIR": str(out), "KIT_DOWNLOAD": "0"}
    env.update({k: v for k, v in os.environ.items() if k.startswith("KIT_")})
    started = time.monotonic()

    def show(cell, cell_index, execute_reply):
        text = stdout_of(cell)
        if text:
            print(f"  [cell {cell_index}, {time.monotonic() - started:5.1f} s]\n" + text.rstrip(), flush=True)

    executed = execute(read(assignment.source), cwd=out, env=env, on_cell_executed=show)
    nbformat.write(executed, str(out / assignment.notebook.replace(".ipynb", ".executed.ipynb")))
    return json.loads((out / "history.json").read_text())


def main():
    print("== 1. release: instructor notebooks -> student notebooks (nbgrader)")
    for assignment in ASSIGNMENTS.values():
        for path in release(assignment):
            print(f"  wrote {path.relative_to(ROOT)}")

    data_dir = os.environ.get("KIT_DATA_DIR") or ensure_synthetic_cifar10(ROOT / "data" / "synthetic")
    print(f"\n== 2. data: {describe(data_dir)}")

    falling = True
    for assignment in ASSIGNMENTS.values():
        out = ROOT / "out" / "demo" / assignment.name
        print(f"\n== 3. reference run of solutions/{assignment.name}/{assignment.notebook} "
              f"({', '.join(f'{k}={v}' for k, v in DEMO_BUDGET.items())})")
        result = reference_run(assignment, data_dir, out)
        print(f"\n  on {result['data']}:")
        for name, h in result["histories"].items():
            first, last = h["train_loss"][0], h["train_loss"][-1]
            falling &= last < first
            print(f"  {name:>20}: train loss {first:.3f} -> {last:.3f} ({'falling' if last < first else 'NOT falling'}), "
                  f"test accuracy {h['test_acc'][-1]:.1f}%")
        print(f"  curves: {(out / 'curves.png').relative_to(ROOT)}; "
              f"executed notebook: {(out / assignment.notebook.replace('.ipynb', '.executed.ipynb')).relative_to(ROOT)}")
    return 0 if falling else 1


if __name__ == "__main__":
    sys.exit(main())
