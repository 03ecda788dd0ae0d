"""Grade one submission: load -> sandbox (export) -> rebuild -> check, as plain data for the report.

The reference solution goes through the very same steps once per run (its models and training result are what
the checks compare with), so a student and the reference are always measured alike.
"""
import importlib.util
import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import rebuild, sandbox
from .check import Graded, Result, collect_checks, run_checks
from .data import describe
from .load import LoadError, definitions, pick_file
from .train import BUDGETS, resolve_data, training_run

MAX_GRAPH_BYTES = 32 << 20
MAX_WEIGHT_BYTES = 512 << 20


@dataclass
class Checklist:
    """An assignment's hidden checks: the file pytest runs, and what it needs exported."""
    name: str
    file: Path
    exports: list
    training_model: str
    preferred_files: list

    @classmethod
    def of(cls, assignment):
        file = Path(__file__).with_name("checks") / f"{assignment.name}.py"
        spec = importlib.util.spec_from_file_location(f"checks_{assignment.name}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return cls(assignment.name, file, module.EXPORTS, module.TRAINING_MODEL,
                   [assignment.module, assignment.notebook])

    def columns(self):
        return collect_checks(self.file)


@dataclass
class StudentResult:
    student: str
    source: str
    results: list  # of check.Result
    cause: str = None  # why (part of) the submission could not be graded, in one sentence
    notes: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    data: str = ""

    @property
    def score(self):
        return sum(r.score for r in self.results)

    @property
    def max_score(self):
        return sum(r.max_score for r in self.results)

    def to_json(self):
        return {**asdict(self), "score": self.score, "max_score": self.max_score}

    @classmethod
    def from_json(cls, data):
        data = {k: v for k, v in data.items() if k not in ("score", "max_score")}
        return cls(**{**data, "results": [Result(**r) for r in data["results"]]})


def call_of(spec):
    args = [repr(a) for a in spec.get("args", [])] + [f"{k}={v!r}" for k, v in spec.get("kwargs", {}).items()]
    return f"{spec['build']}({', '.join(args)})"


def _reason(spec, error: dict, notes: list) -> str:
    call = call_of(spec)
    if error["error"] == "MemoryError" or "can't allocate memory" in error["message"]:
        return f"memory: building {call} asked for more memory than the grader allows"
    if error["error"] == "AttributeError" and f"no attribute '{spec['build']}'" in error["message"]:
        why = f" (perhaps because {notes[0]})" if notes else ""
        return (f"missing name: the submission defines no {spec['build']}{why}. The autograder reads only "
                "definitions (imports, functions, classes, constants): keep the name and signature as given.")
    done = {"build": "built", "export": "exported"}.get(error["stage"], error["stage"])
    return (f"{call} could not be {done}: {error['error']}: {error['message']}. Next step: run the notebook's "
            "sanity checks on it; the error names the call or the shapes that do not fit.")


def export_and_rebuild(source: Path, checklist: Checklist, workdir: Path, limits: sandbox.Limits, slot=1):
    """({export name: Rebuilt or reason}, notes, cause, timings) of one submission file."""
    timings = {}
    started = time.monotonic()
    defs = definitions(source)  # raises LoadError
    timings["load"] = time.monotonic() - started
    outcome = sandbox.run_export({"chunks": defs.chunks, "models": checklist.exports}, workdir, limits, slot)
    timings["sandbox"] = outcome.seconds
    notes = list(defs.notes)
    try:
        notes += json.loads(sandbox.read_plain_file(workdir / "definitions.json", 1 << 20))["notes"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:  # the child's own account, for the benchmark's split only
        child = json.loads(sandbox.read_plain_file(workdir / "timings.json", 4096))
        timings.update({"process_start": float(child["start"]), "export": float(child["define"] + child["export"])})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    started = time.monotonic()
    models = {}
    for spec in checklist.exports:
        name = spec["name"]
        try:
            error = json.loads(sandbox.read_plain_file(workdir / f"{name}.error.json", 1 << 20))
            models[name] = _reason(spec, error, notes)
            continue
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            models[name] = f"{call_of(spec)}: the export's error report is unreadable"
            continue
        try:
            models[name] = rebuild.from_bytes(
                sandbox.read_plain_file(workdir / f"{name}.json", MAX_GRAPH_BYTES),
                sandbox.read_plain_file(workdir / f"{name}.safetensors", MAX_WEIGHT_BYTES), spec["inputs"])
        except FileNotFoundError:
            models[name] = f"{call_of(spec)} was not exported: {outcome.cause or 'the export stopped early'}"
        except (OSError, ValueError) as exc:  # RebuildError is a ValueError
            models[name] = f"{call_of(spec)}: {exc}"
    timings["rebuild"] = time.monotonic() - started
    named = [m for m in models.values() if isinstance(m, str) and m.startswith(("memory:", "missing name:"))]
    cause = outcome.cause or (named[0] if named else None)  # the student's one message, when one names it
    return models, notes, cause, timings


@dataclass
class Context:
    """What every student of one run is compared with, and how."""
    checklist: Checklist
    reference: Graded
    data_root: Path
    data: str
    device: str
    limits: sandbox.Limits


def train_lazily(model, context: Context, timings: dict):
    cache = {}

    def train():
        if "run" not in cache:
            started = time.monotonic()
            cache["run"] = training_run(model, context.data_root, BUDGETS[context.device], context.device)
            timings["training"] = time.monotonic() - started
        return cache["run"]
    return train


def grade(student: str, path: Path, context: Context, scratch: Path, slot: int = 1) -> StudentResult:
    """Grade one student's file or folder. Never raises for anything the submission does."""
    timings, source = {}, str(path)
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-", dir=scratch))
    try:
        file = pick_file(path, context.checklist.preferred_files) if path.is_dir() else path
        source = str(file)
        models, notes, cause, timings = export_and_rebuild(file, context.checklist, workdir, context.limits, slot)
    except LoadError as exc:
        models, notes, cause = {}, [], f"load: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if cause and all(isinstance(m, str) for m in models.values()):
        models = {spec["name"]: cause for spec in context.checklist.exports}
    training_model = models.get(context.checklist.training_model)
    graded = Graded(models, reference=context.reference,
                    reference_training=context.reference.reference_training)
    if not isinstance(training_model, str) and training_model is not None:
        graded.training = train_lazily(training_model, context, timings)
    else:
        graded.training = lambda: graded.model(context.checklist.training_model)
    started = time.monotonic()
    results = run_checks(context.checklist.file, graded)
    timings["checks"] = time.monotonic() - started - timings.get("training", 0.0)
    return StudentResult(student, source, results, cause, notes, timings, context.data)


def prepare(assignment, data_dir, device, cache_dir: Path, scratch: Path, limits=sandbox.Limits()) -> Context:
    """The run's context: the reference solution exported, rebuilt and trained once (training cached on disk)."""
    checklist = Checklist.of(assignment)
    root = resolve_data(data_dir, cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="reference-", dir=scratch))
    try:
        models, notes, cause, _ = export_and_rebuild(assignment.reference_module, checklist, workdir, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    broken = {k: v for k, v in models.items() if isinstance(v, str)}
    if cause or broken:
        raise RuntimeError(f"the reference solution does not export cleanly: {cause or broken}")
    budget = BUDGETS[device]
    key = json.dumps([assignment.name, asdict(budget), device, describe(root)], sort_keys=True)
    cached = cache_dir / "reference-training.json"
    ref_training = None
    if cached.exists():
        stored = json.loads(cached.read_text())
        ref_training = stored["result"] if stored.get("key") == key else None
    if ref_training is None:
        ref_training = training_run(models[checklist.training_model], root, budget, device)
        cached.write_text(json.dumps({"key": key, "result": ref_training}))
    reference = Graded(models, reference_training=ref_training)
    return Context(checklist, reference, root, ref_training["data"], device, limits)
