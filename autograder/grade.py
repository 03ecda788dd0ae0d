"""Grade one submission: load -> sandbox (export) -> rebuild -> check, as plain data for the report.

The reference solution goes through the very same steps once per run (its models and training result are what
the checks compare with), so a student and the reference are always measured alike. Everything the sandboxed
child wrote is read here as hostile input: regular files only, size-capped, parsed as JSON or safetensors and
type-checked; its words reach the student only through `text.plain`.
"""
import copy
import hashlib
import importlib.util
import json
import re
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from . import optimizers, rebuild, sandbox
from .check import Graded, Missing, Result, collect_checks, run_checks
from .load import LoadError, definitions, pick_file, tree
from .text import plain
from .train import BUDGETS, DATASETS, EVAL_CHUNK, Budget, TaskData, resolve_data, task_data, training_run

MAX_GRAPH_BYTES = 32 << 20
MAX_WEIGHT_BYTES = 512 << 20
MAX_NOTES = 20
MAX_PARAMETER_LIST = (1 << 20, 20_000)  # bytes and entries of a parameter list (ResNet-152's has 465 entries)
CHECK_BATCHES = (1, 2, 3, 8)  # the batch sizes the checks run a model at
_WHERE = re.compile(r"(cell \d{1,4}|[\w .-]{1,120}\.py), line \d{1,6}|(building|exporting) [\w.]{1,80}|done")


@dataclass
class Checklist:
    """An assignment's hidden checks: the file pytest runs, and what it needs exported."""
    name: str
    file: Path
    exports: list
    training_model: str
    preferred_files: list
    training_budget: dict = field(default_factory=dict)  # device -> changes to train.BUDGETS[device]
    training_data: str = "cifar10"  # the training run's data set: one of train.DATASETS
    parts: dict = field(default_factory=dict)  # nbgrader grade cell id -> the checks it scores (PARTS)

    @classmethod
    def of(cls, assignment):
        file = assignment.checks
        spec = importlib.util.spec_from_file_location(f"checks_{assignment.name}", file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        data = getattr(module, "TRAINING_DATA", "cifar10")
        if data not in DATASETS:
            raise ValueError(f"{file}: TRAINING_DATA = {data!r}; the kit trains on {', '.join(DATASETS)}")
        return cls(assignment.name, file, module.EXPORTS, module.TRAINING_MODEL,
                   [assignment.module, assignment.notebook], getattr(module, "TRAINING_BUDGET", {}), data,
                   dict(getattr(module, "PARTS", {})))

    def columns(self):
        return collect_checks(self.file)

    def budget(self, device) -> Budget:
        """The training run's budget on `device`: the kit's, with what the checks file changes (a deep net's
        fewer steps, say)."""
        return replace(BUDGETS[device], **self.training_budget.get(device, {}))

    def batches(self, name) -> tuple:
        """Every batch size the grader runs model `name` at: its memory is checked at each before it runs."""
        extra = {EVAL_CHUNK, *(self.budget(d).batch for d in BUDGETS)} if name == self.training_model else set()
        return tuple(sorted(set(CHECK_BATCHES) | extra))

    def fingerprint(self) -> str:
        """What a stored result depends on, of the grader's side: the checks, what they share, and the exports they
        ask for."""
        shared = Path(__file__).with_name("probes.py").read_bytes()
        return hashlib.sha256(self.file.read_bytes() + shared + json.dumps(self.exports, sort_keys=True).encode()
                              ).hexdigest()


@dataclass
class StudentResult:
    student: str
    source: str
    results: list  # of check.Result
    cause: str = None  # why (part of) the submission could not be graded, in one sentence
    notes: list = field(default_factory=list)  # what was skipped while reading (failed imports, code not run)
    timings: dict = field(default_factory=dict)
    data: str = ""
    picked: str = ""  # why this file of the student's folder was graded, when there was a choice
    key: dict = field(default_factory=dict)  # what produced this result (submission hash, checks, budget, ...)

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


def builders(spec) -> list:
    """The names a model may be built by, the assignment's own first (a capitalised twin may follow)."""
    return spec["build"] if isinstance(spec["build"], list) else [spec["build"]]


def _argument(value) -> str:
    """An argument as the feedback shows it: parameters handed to an optimizer's maker read `model.parameters()`."""
    return "model.parameters()" if isinstance(value, dict) and set(value) == {"parameters"} else repr(value)


def call_of(spec):
    args = [_argument(a) for a in spec.get("args", [])] + [f"{k}={_argument(v)}" for k, v in
                                                           spec.get("kwargs", {}).items()]
    return f"{builders(spec)[0]}({', '.join(args)})"


def _shape(shapes) -> str:
    return " and ".join(str(tuple(s)) for s in shapes)


def _reason(spec, error: dict, notes: list, hide, part="", shapes=None) -> Missing:
    """Why model `spec` (or its `part`) is unavailable, from the child's error report (validated, its text kept
    apart)."""
    call = call_of(spec) + (f".{part}" if part else "")
    kind = error.get("error") if isinstance(error.get("error"), str) else ""
    kind = kind if re.fullmatch(r"[A-Za-z_][\w.]{0,80}", kind) else "Error"
    said = plain(f"{kind}: {error.get('message', '')}", 1200, hide)
    stage = error.get("stage") if error.get("stage") in ("build", "run", "export") else "export"
    if kind == "MemoryError" or "can't allocate memory" in said:
        return Missing(f"memory: building {call} asked for more memory than the grader allows")
    name = builders(spec)[0]
    if kind == "AttributeError" and f"no attribute '{name}'" in said:
        # the first note (a statement that failed) may say why, but a child could have written it: it is shown as
        # what the code said, never inside the grader's sentence
        why = " Perhaps a statement before it failed: see below." if notes else ""
        also = "".join(f" (nor {n})" for n in builders(spec)[1:])
        return Missing(f"missing name: the submission defines no {name}{also}. The autograder reads only "
                       "definitions (imports, functions, classes, constants): keep the name and signature as "
                       f"given.{why}", plain(notes[0], 300, hide) if notes else "")
    if 'missing the required "forward" function' in said:
        return Missing(f"`{name}` has no `forward`: define `def forward(self, x):` inside the class "
                       "(check its indentation: it must be a method of the class).")
    called = any(f"{n}() got an unexpected keyword" in said or f"{n}.__init__() got an unexpected keyword" in said
                 for n in builders(spec))
    if stage == "build" and kind == "TypeError" and called:  # the builder's own signature, not a typo inside it
        return Missing(f"{call} could not be built: it does not take the keyword arguments the assignment's "
                       f"{name} takes. Next step: keep the signature as given.", said)
    if stage == "build":
        return Missing(f"{call} could not be built. Next step: run the notebook's sanity checks; the error below "
                       "names the line.", said)
    if stage == "run":
        return Missing(f"{call} could not run on an input of shape {_shape(shapes or spec['inputs'])}. Next step: "
                       "run the notebook's sanity checks; the error below names the shapes that do not fit and the "
                       "line.", said)
    return Missing(f"{call} runs, but could not be exported for grading: build it from standard torch.nn layers and "
                   "tensor operations, with no Python decisions on tensor values.", said)


def _read_json(path: Path, limit: int):
    """A child's JSON file; ValueError for anything unreadable, nesting too deep for the parser included."""
    try:
        return json.loads(sandbox.read_plain_file(path, limit))
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply") from None


def _prefixed(graph: dict, tensors: dict, prefix: str):
    """A part's graph (`net.layer3` exported alone) named as inside the whole net: module paths and weight names
    gain `layer3.`, so the checks read it like the same stage of a whole net."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return graph, tensors
    graph = copy.deepcopy(graph)
    for node in graph["nodes"]:
        if isinstance(node, dict) and isinstance(node.get("module"), str):
            node["module"] = f"{prefix}.{node['module']}" if node["module"] else prefix
    for spec in graph.get("inputs", []):
        if isinstance(spec, dict) and spec.get("kind") != "input" and isinstance(spec.get("target"), str):
            spec["target"] = f"{prefix}.{spec['target']}"
    return graph, {f"{prefix}.{k}": v for k, v in tensors.items()}


def _behaves_as_run(model, workdir: Path, name: str, shapes, probe: int):
    """None if the rebuilt graph computes what the student's code computed when simply run on the probe input
    (eval mode, and train mode unless dropout makes it random); else why not."""
    try:
        eager = safetensors_load(sandbox.read_plain_file(workdir / f"{name}.eager.safetensors", MAX_WEIGHT_BYTES))
    except (OSError, ValueError) as exc:
        return f"its outputs when run were not reported ({type(exc).__name__})"
    generator = torch.Generator().manual_seed(probe)
    probes = [torch.randn(*shape, generator=generator) for shape in shapes]
    modes = ["eval"] + ([] if any(n["op"] == "aten.dropout.default" for n in model.graph["nodes"]) else ["train"])
    for mode in modes:
        want = eager.get(mode)
        with torch.no_grad():
            got = copy.deepcopy(model).train(mode == "train")(*probes)
        if not isinstance(got, torch.Tensor) or want is None or got.shape != want.shape:
            return f"in {mode} mode its output has shape {tuple(getattr(got, 'shape', ()))} when exported, " \
                   f"{tuple(want.shape) if want is not None else 'none'} when run"
        scale = want.abs().max().item() if want.numel() else 0.0
        # train-mode batch norm over a few values per channel (a deep net's 1 x 1 maps at batch 4) magnifies the
        # rounding of two processes' different kernels: measured up to 6e-4 of the scale in ResNet-50 at 32 x 32
        tolerance = (2e-3 if mode == "train" else 1e-4) * scale + 1e-5
        if not torch.allclose(got, want, rtol=1e-3, atol=tolerance):
            return f"in {mode} mode its output differs by up to {(got - want).abs().max().item():.3g} " \
                   f"(largest value {scale:.3g})"
    return None


def _error(workdir: Path, name: str, spec: dict, notes, hide, prefix="", shapes=None):
    """The Missing reason the child reported for model `name`, or None when it reported none."""
    try:
        return _reason(spec, _read_json(workdir / f"{name}.error.json", 1 << 20), notes, hide, prefix, shapes)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, AttributeError):
        return Missing(f"{call_of(spec)}{f'.{prefix}' if prefix else ''}: the export's error report is unreadable")


def _load_optimizer(workdir: Path, spec: dict, notes, hide):
    """The Described optimizer of spec `spec` from the child's description, or the Missing reason it is unavailable
    (None when the child never got there)."""
    error = _error(workdir, spec["name"], spec, notes, hide)
    if error:
        return error
    handed = sum(len(a["parameters"]) for a in [*spec.get("args", []), *spec.get("kwargs", {}).values()]
                 if isinstance(a, dict) and set(a) == {"parameters"})
    try:
        return optimizers.described(_read_json(workdir / f"{spec['name']}.optimizer.json", 1 << 20), handed)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # OptimizerError is a ValueError
        return Missing(f"{call_of(spec)}: {plain(exc, 600, hide)}")


def _load_model(workdir: Path, name: str, spec: dict, shapes, batches, probe: int, notes, hide, prefix="",
                sizes=()):
    """The rebuilt model `name` from the child's files, or the Missing reason it is unavailable."""
    call = call_of(spec) + (f".{prefix}" if prefix else "")
    error = _error(workdir, name, spec, notes, hide, prefix, shapes)
    if error:
        return error
    try:
        graph = sandbox.read_plain_file(workdir / f"{name}.json", MAX_GRAPH_BYTES)
        tensors = sandbox.read_plain_file(workdir / f"{name}.safetensors", MAX_WEIGHT_BYTES)
        if prefix:
            graph, tensors = _prefixed(json.loads(graph), safetensors_load(tensors), prefix)
            graph, tensors = json.dumps(graph).encode(), safetensors_save(tensors)
        model = rebuild.from_bytes(graph, tensors, shapes, batches, [[size] for size in sizes])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:  # RebuildError is a ValueError
        return Missing(f"{call}: {plain(exc, 600, hide)}")
    differs = _behaves_as_run(model, workdir, name, shapes, probe)
    if differs:
        return Missing(f"{call} behaves differently when exported than when run: {differs}. Code must compute the "
                       "same thing whether or not it is being exported (no torch.compiler.is_exporting(), no "
                       "tracing checks).")
    return model


def _parameter_shapes(workdir: Path, name: str):
    """{name: shape} of model `name`'s parameters as the child listed them, or None."""
    try:
        shapes = _read_json(workdir / f"{name}.params.json", MAX_PARAMETER_LIST[0])
    except (OSError, ValueError):
        return None
    ok = isinstance(shapes, dict) and len(shapes) <= MAX_PARAMETER_LIST[1] and all(
        isinstance(k, str) and len(k) < 300 and isinstance(v, list) and len(v) <= 8
        and all(isinstance(d, int) and 0 <= d < 1 << 31 for d in v) for k, v in shapes.items())
    return shapes if ok else None


def _built_by(workdir: Path, spec: dict):
    """The name the child built `spec` by when it was not the assignment's own (one of the spec's names), or None."""
    try:
        built = _read_json(workdir / f"{spec['name']}.built.json", 4096)["build"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return built if built in builders(spec)[1:] else None


def _ended_where(workdir: Path):
    try:
        where = sandbox.read_plain_file(workdir / "progress.txt", 300).decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return None
    return where if _WHERE.fullmatch(where) else None


def export_and_rebuild(source: Path, checklist: Checklist, workdir: Path, limits: sandbox.Limits, slot=1,
                       hide=()):
    """({export name: Rebuilt or Missing}, notes, cause, timings, parameter shapes, names used) of one submission
    file. A spec with "export": false is only built: its parameter shapes are listed, and it is in the models only
    as the Missing reason when it could not be built."""
    timings = {}
    started = time.monotonic()
    defs = definitions(source)  # raises LoadError
    timings["load"] = time.monotonic() - started
    probe = secrets.randbelow(1 << 31)
    outcome = sandbox.run_export({"chunks": defs.chunks, "models": checklist.exports, "probe": probe}, workdir,
                                 limits, slot)
    timings["sandbox"] = outcome.seconds
    hide = (*hide, workdir, workdir.parent)
    notes = list(defs.notes)
    try:
        said = _read_json(workdir / "definitions.json", 1 << 20)["notes"]
        notes += [plain(n, 400, hide) for n in said[:MAX_NOTES] if isinstance(n, str)]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:  # the child's own account, for the benchmark's split only
        child = _read_json(workdir / "timings.json", 4096)
        timings.update({"process_start": float(child["start"]), "export": float(child["define"] + child["export"])})
    except (OSError, ValueError, KeyError, TypeError):
        pass
    started = time.monotonic()
    models, params, names = {}, {}, {}
    where = _ended_where(workdir)
    for spec in checklist.exports:
        name = spec["name"]
        params[name] = _parameter_shapes(workdir, name)
        built = _built_by(workdir, spec)
        if built:
            names[builders(spec)[0]] = built
        if spec.get("kind") == "optimizer":
            models[name] = _load_optimizer(workdir, spec, notes, hide)
            continue
        if spec.get("export") is False:
            reason = _error(workdir, name, spec, notes, hide)
            if reason or params[name] is None:  # None: not reached, the cause below says why
                models[name] = reason or (Missing(f"{call_of(spec)} did not give a torch.nn.Module")
                                          if where == "done" else None)
            continue
        batches = checklist.batches(name)
        model = _load_model(workdir, name, spec, spec["inputs"], batches, probe, notes, hide,
                            sizes=spec.get("sizes", ()))
        models[name] = model
        if isinstance(model, Missing):
            for part, shapes in spec.get("parts", {}).items():
                piece = _load_model(workdir, f"{name}.{part}", spec, shapes, batches, probe, notes, hide, part)
                if piece is not None:
                    models[f"{name}.{part}"] = piece
    cause = outcome.cause
    if cause is None and where != "done":
        cause = "exit: the code ended the process (exit status 0) before its models were exported"
    if cause and cause.startswith("exit") and where and where != "done":
        cause += f", while running {where}"
    for name, model in models.items():
        if model is None:
            models[name] = Missing(f"{name} was not exported: {cause or 'the export stopped early'}")
    timings["rebuild"] = time.monotonic() - started
    named = [m.message for m in models.values() if isinstance(m, Missing)
             and m.message.startswith(("memory:", "missing name:"))]
    cause = cause or (named[0] if named else None)  # the student's one message, when one names it
    return models, notes, cause, timings, params, names


@dataclass
class Context:
    """What every student of one run is compared with, and how."""
    checklist: Checklist
    reference: Graded
    task: TaskData  # the training task's tensors, read before any child ran
    data: str
    device: str
    limits: sandbox.Limits
    key: dict = field(default_factory=dict)  # what every result of this run depends on, besides the submission
    hide: tuple = ()  # the grading machine's paths, never shown to a student


def train_lazily(model, context: Context, timings: dict):
    cache = {}

    def train():
        if "run" not in cache:
            started = time.monotonic()
            cache["run"] = training_run(model, context.task, context.checklist.budget(context.device),
                                        context.device)
            timings["training"] = time.monotonic() - started
        return cache["run"]
    return train


def submission_hash(path: Path) -> str:
    """sha256 over a file, or a folder's regular files (names and contents), read without following links."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p, mode in tree(path) if stat.S_ISREG(mode))
    for p in files:
        digest.update(str(p.relative_to(path.parent)).encode() + b"\0")
        try:
            digest.update(sandbox.read_plain_file(p, 1 << 30))
        except (OSError, ValueError):
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def grade(student: str, path: Path, context: Context, scratch: Path, slot: int = 1, error: str = None) \
        -> StudentResult:
    """Grade one student's file or folder. Never raises for anything the submission does. `error`: why nothing
    of the submission could be read (a corrupt zip, say): the student then gets 0 with that message."""
    begun = time.monotonic()
    timings, source, picked, params = {}, str(path), "", {}
    workdir = sandbox.new_workdir(scratch, context.limits)  # the first one also starts the warm sandbox
    started_sandbox = time.monotonic() - begun
    try:
        if error:
            raise LoadError(error)
        file = path
        if path.is_dir():
            file, picked = pick_file(path, context.checklist.preferred_files)
        source = str(file)
        models, notes, cause, timings, params, names = export_and_rebuild(file, context.checklist, workdir,
                                                                           context.limits, slot, context.hide)
        if names:
            picked = " ".join(filter(None, [picked, "Graded by other names: " + ", ".join(
                f"`{used}` as the assignment's `{name}`" for name, used in names.items()) + "."]))
    except LoadError as exc:
        models, notes, cause = {}, [], f"load: {exc}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if cause and all(isinstance(m, Missing) for m in models.values()):
        models = {spec["name"]: Missing(cause) for spec in context.checklist.exports}
    training_model = models.get(context.checklist.training_model)
    graded = Graded(models, reference=context.reference, reference_training=context.reference.reference_training,
                    parameter_shapes=params)
    if isinstance(training_model, rebuild.Rebuilt):
        graded.training = train_lazily(training_model, context, timings)
    else:
        graded.training = lambda: graded.model(context.checklist.training_model)
    started = time.monotonic()
    results = run_checks(context.checklist.file, graded)
    timings["checks"] = time.monotonic() - started - timings.get("training", 0.0)
    timings["total"] = time.monotonic() - begun
    timings["workdir"] = started_sandbox
    key = {**context.key, "submission": submission_hash(path) if path.exists() else ""}
    return StudentResult(student, source, results, cause, notes, timings, context.data, picked or "", key)


def prepare(assignment, data_dir, device, cache_dir: Path, scratch: Path, limits=sandbox.Limits(),
            trust_cache=True, hide=()) -> Context:
    """The run's context: the reference solution exported, rebuilt and trained once. Its training result is cached
    on disk (written atomically) only where no child can reach the cache (`trust_cache`)."""
    from .report import write_atomically

    checklist = Checklist.of(assignment)
    cache_dir.mkdir(parents=True, exist_ok=True)
    budget = checklist.budget(device)
    root, checksums = resolve_data(data_dir, cache_dir, checklist.training_data)  # raises DataError
    task = task_data(root, budget, checksums, checklist.training_data)
    workdir = Path(tempfile.mkdtemp(prefix="reference-", dir=scratch))
    try:
        models, notes, cause, _, params, _ = export_and_rebuild(assignment.reference_module, checklist, workdir,
                                                                limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    broken = {k: v.message for k, v in models.items() if isinstance(v, Missing)}
    if cause or broken:
        raise RuntimeError(f"the reference solution does not export cleanly: {cause or broken}")
    # JSON-shaped from the start (tuples as lists), so it equals the key read back from a stored result
    key = json.loads(json.dumps({"assignment": assignment.name, "checks": checklist.fingerprint(),
                                 "budget": asdict(budget), "device": device, "data": task.description}))
    cached = cache_dir / "reference-training.json"
    ref_training = None
    if trust_cache and cached.exists():
        try:
            stored = json.loads(sandbox.read_plain_file(cached, 1 << 20))
            ref_training = stored["result"] if stored.get("key") == key else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            ref_training = None
    if ref_training is None:
        ref_training = training_run(models[checklist.training_model], task, budget, device)
        if trust_cache:
            write_atomically(cached, json.dumps({"key": key, "result": ref_training}))
    reference = Graded(models, reference_training=ref_training, parameter_shapes=params)
    return Context(checklist, reference, task, task.description, device, limits, key, hide)
