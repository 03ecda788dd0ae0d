"""Export: the only code that runs beside student code. It lives in the sandbox's child process.

Run as a script (`python -I export.py request.json`) from the sandbox's scratch dir, so it imports nothing of the
kit: it defines the student's code from plain-text chunks, builds each model the request names, runs it once on
the example input (so an error names real shapes and the student's line), exports it with torch.export, and writes
plain data per model: NAME.json (the graph: each node's aten op, arguments, output shape with null for the dynamic
batch dimension, module path), NAME.safetensors (the weights), NAME.eager.safetensors (what the code computes when
simply run on the grader's probe input, in eval and train mode: the grader compares it with the graph's own
output, so code that behaves differently while exported is caught) and NAME.params.json (parameter shapes, written
even when the model cannot run). A model that fails writes NAME.error.json instead, and then each of its parts the
request names (`net.layer3`, ...) is exported alone. A model's "build" may list other names to try in order (a
capitalised builder, say): NAME.built.json then says which one was built. A model marked "export": false is only
built and its parameters listed (a deep builder's count costs no export). A model's "sizes" are other input
shapes the grader will run it at: the dimensions where they differ stay dynamic in the export, as the batch does.
A spec of "kind" "optimizer" calls a function that makes an optimizer, handing it fresh parameters for each
{"parameters": [shape, ...]} argument, and writes NAME.optimizer.json: the optimizer's class, and each parameter
group's parameters (as indices into what was handed in) and options, as plain data; the grader builds its own
optimizer from that description. definitions.json lists the statements that failed; progress.txt says where the
code was, for a child that ends the process. Nothing here is trusted by the grader: it validates and re-runs what it
reads.
"""
import ast
import json
import sys
import traceback
import types
from pathlib import Path

FORMAT = "cnnkit-graph/1"


def encode(value):
    """An fx argument as JSON: graph values become {"ref": name}; anything not plain data is refused."""
    import torch

    if isinstance(value, torch.fx.Node):
        return {"ref": value.name}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": "any"}  # the grader picks its own device
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    raise TypeError(f"argument of type {type(value).__name__} cannot be exported")


def op_name(target) -> str:
    """aten ops by their overload name ("aten.conv2d.default"); Python operators as "_operator.mul"."""
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__name__', '?')}"


def graph_of(exported) -> dict:
    """The JSON graph of a torch.export ExportedProgram."""
    kinds = {"PARAMETER": "parameter", "BUFFER": "buffer", "CONSTANT_TENSOR": "constant", "USER_INPUT": "input"}
    inputs = []
    for spec in exported.graph_signature.input_specs:
        kind = kinds.get(spec.kind.name)
        if kind is None:
            raise TypeError(f"graph input of kind {spec.kind.name} cannot be exported")
        inputs.append({"name": spec.arg.name, "kind": kind, "target": spec.target})
    nodes, output = [], None
    for node in exported.graph.nodes:
        if node.op == "call_function":
            val = node.meta.get("val")
            stack = list((node.meta.get("nn_module_stack") or {}).values())
            path, cls = stack[-1] if stack else ("", "")
            nodes.append({
                "name": node.name, "op": op_name(node.target),
                "args": encode(node.args), "kwargs": {k: encode(v) for k, v in node.kwargs.items()},
                "shape": [d if isinstance(d, int) else None for d in val.shape] if hasattr(val, "shape") else None,
                "module": path.removeprefix("L['self'].") if path != "L['self']" else "",
                "module_type": cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}",
            })
        elif node.op == "output":
            output = encode(node.args[0])
    return {"format": FORMAT, "inputs": inputs, "nodes": nodes, "output": output}


def export_model(model, example_inputs, train=True, dynamic=(0,)):
    """(graph, tensors) of `model` run on `example_inputs` in train or eval mode. The `dynamic` dimensions (the
    batch, and H and W for a net graded at several sizes) stay dynamic where the code allows it, so one export
    serves every such shape; code that fixes one exports as is."""
    import torch

    model.train(train)
    dims = [{d: torch.export.Dim.AUTO for d in dynamic} for _ in example_inputs]
    exported = torch.export.export(model, tuple(example_inputs), dynamic_shapes=dims)
    tensors = {**exported.state_dict, **exported.constants}
    return graph_of(exported), {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save(name, graph, tensors, out: Path):
    from safetensors.torch import save_file

    save_file(tensors, str(out / f"{name}.safetensors"))
    (out / f"{name}.json").write_text(json.dumps(graph))


def define(chunks, progress):
    """The student's definitions as a module, run one top-level statement at a time: one that fails (an import
    of a module the grader lacks, say) becomes a note, and the rest still run. Chunks keep their labels (file or
    cell) and line numbers for tracebacks. `progress(where)` hears each statement's place before it runs, so
    code that ends the process is located."""
    module = types.ModuleType("submission")
    sys.modules["submission"] = module
    notes = []
    for chunk in chunks:
        for stmt in ast.parse(chunk["code"], chunk["label"]).body:
            progress(f"{chunk['label']}, line {stmt.lineno}")
            try:
                exec(compile(ast.Module([stmt], []), chunk["label"], "exec"), module.__dict__)
            except BaseException as exc:  # noqa: BLE001 - SystemExit in a class body included
                if not isinstance(stmt, (ast.Assign, ast.AnnAssign)):  # a constant that fails shows where used
                    notes.append(f"{chunk['label']}, line {stmt.lineno}: {type(exc).__name__}: {str(exc)[:300]}")
    return module, notes


def failure(stage, exc, labels) -> dict:
    """The error as plain data, located at the student's own last line (a cell or file label), if any."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename in labels]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return {"stage": stage, "error": type(exc).__name__, "message": f"{exc}"[:2000] + where}


def submodule(model, path):
    """`model.layer3` for "layer3" (dotted paths and Sequential indices too)."""
    for part in path.split("."):
        model = getattr(model, part)
    return model


def parameter_shapes(model) -> dict:
    """{dotted name: shape} of the model's parameters: counted even when the model cannot run."""
    return {name: list(p.shape) for name, p in list(model.named_parameters())[:100_000]}


def run_eagerly(model, inputs, train):
    """The model's output when the code simply runs (no export, no tracing)."""
    import torch

    model.train(train)
    with torch.no_grad():
        out = model(*inputs)
    return out if isinstance(out, torch.Tensor) else None


def dynamic_dims(shapes, sizes) -> tuple:
    """The batch, and every dimension where one of `sizes` (other single-input shapes) differs from `shapes`."""
    return tuple(sorted({0} | {d for size in sizes for d, (a, b) in enumerate(zip(size, shapes[0])) if a != b}))


def export_one(name, model, shapes, probe, out, stage, sizes=()):
    """Export `model` (built) as NAME.json + NAME.safetensors, and what the code computes when run on the grader's
    probe inputs as NAME.eager.safetensors. Raises the student's own error; `stage["now"]` says at which step."""
    import torch
    from safetensors.torch import save_file

    inputs = [torch.randn(*shape) for shape in shapes]
    stage["now"] = "run"
    run_eagerly(model, inputs, train=False)  # an error here names real shapes and the student's line
    stage["now"] = "export"
    graph, tensors = export_model(model, inputs, train=True, dynamic=dynamic_dims(shapes, sizes))
    save(name, graph, tensors, out)
    generator = torch.Generator().manual_seed(probe)
    probes = [torch.randn(*shape, generator=generator) for shape in shapes]
    eager = {"eval": run_eagerly(model, probes, train=False), "train": run_eagerly(model, probes, train=True)}
    save_file({k: v.detach().contiguous() for k, v in eager.items() if v is not None},
              str(out / f"{name}.eager.safetensors"))


def option(value):
    """An optimizer option as JSON: numbers, flags, None and short lists of numbers; a one-element tensor (a
    tensor lr) as its number. Anything else is named by its type, and the grader refuses it."""
    import torch

    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) else value[:100]
    if isinstance(value, (list, tuple)) and len(value) <= 8 and all(
            isinstance(v, (bool, int, float)) for v in value):
        return list(value)
    return {"unsupported": type(value).__name__[:100]}


def make_optimizer(function, args, kwargs):
    """Call `function` with fresh parameters in place of each {"parameters": [shape, ...]} argument; its
    optimizer described as plain data."""
    import torch

    handed = []

    def fresh(value):
        if isinstance(value, dict) and set(value) == {"parameters"}:
            params = [torch.nn.Parameter(torch.zeros(*shape)) for shape in value["parameters"]]
            handed.extend(params)
            return iter(params)  # what model.parameters() gives: a generator, read once
        return value

    optimizer = function(*[fresh(a) for a in args], **{k: fresh(v) for k, v in kwargs.items()})
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"expected a torch.optim optimizer, got {type(optimizer).__name__}")
    index = {id(p): i for i, p in enumerate(handed)}
    return {"class": type(optimizer).__name__, "module": type(optimizer).__module__, "parameters": len(handed),
            "groups": [{"params": [index.get(id(p), -1) for p in group["params"]][:10_000],
                        "options": {str(k)[:100]: option(v) for k, v in list(group.items())[:100] if k != "params"}}
                       for group in optimizer.param_groups[:100]]}


def main(request_path):
    import time

    started = time.monotonic()
    request = json.loads(Path(request_path).read_text())
    sys.path[:0] = request.get("path", [])  # the grader's site-packages, when the child runs another interpreter
    import torch

    timings = {"start": time.monotonic() - started}

    out = Path(request["out"])

    def progress(where):
        (out / "progress.txt").write_text(where)

    module, notes = define(request["chunks"], progress)
    labels = {chunk["label"] for chunk in request["chunks"]}
    (out / "definitions.json").write_text(json.dumps({"notes": notes}))
    timings["define"] = time.monotonic() - started - timings["start"]
    for spec in request["models"]:
        name = spec["name"]
        stage = {"now": "build"}
        try:
            progress(f"building {name}")
            torch.manual_seed(spec.get("seed", 0))
            names = spec["build"] if isinstance(spec["build"], list) else [spec["build"]]
            built = next((n for n in names if hasattr(module, n)), names[0])
            if built != names[0]:
                (out / f"{name}.built.json").write_text(json.dumps({"build": built}))
            if spec.get("kind") == "optimizer":
                described = make_optimizer(getattr(module, built), spec.get("args", []), spec.get("kwargs", {}))
                (out / f"{name}.optimizer.json").write_text(json.dumps(described))
                continue
            model = getattr(module, built)(*spec.get("args", []), **spec.get("kwargs", {}))
            if isinstance(model, torch.nn.Module):
                (out / f"{name}.params.json").write_text(json.dumps(parameter_shapes(model)))
            if spec.get("export") is False:
                continue
            progress(f"exporting {name}")
            export_one(name, model, spec["inputs"], request.get("probe", 0), out, stage, spec.get("sizes", ()))
        except BaseException as exc:  # noqa: BLE001
            (out / f"{name}.error.json").write_text(json.dumps(failure(stage["now"], exc, labels)))
            if stage["now"] != "build":  # the whole cannot run: each part alone, so right parts still earn points
                for part, shapes in spec.get("parts", {}).items():
                    part_stage = {"now": "build"}
                    try:
                        progress(f"exporting {name}.{part}")
                        export_one(f"{name}.{part}", submodule(model, part), shapes, request.get("probe", 0),
                                   out, part_stage)
                    except BaseException as part_exc:  # noqa: BLE001
                        (out / f"{name}.{part}.error.json").write_text(
                            json.dumps(failure(part_stage["now"], part_exc, labels)))
    progress("done")
    timings["export"] = time.monotonic() - started - timings["start"] - timings["define"]
    (out / "timings.json").write_text(json.dumps(timings))  # for the benchmark only; never graded


# ---- the warm sandbox: one pre-started process that forks a fresh child per submission ------------------------

def warm_up():
    """Import and run once what every export needs (torch.export's first call costs seconds), on a tiny net of the
    layers the assignments use, so each forked child starts with it done. One thread: no OpenMP pool to fork."""
    import torch
    from safetensors.torch import save as save_bytes

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4),
                              torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.AvgPool2d(1),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    inputs = [torch.randn(2, 3, 8, 8)]
    run_eagerly(net, inputs, train=False)
    graph, tensors = export_model(net, inputs, train=True, dynamic=(0,))
    json.dumps(graph)
    save_bytes(tensors)  # nothing is written: the server has no dir of its own to write in
    run_eagerly(net, inputs, train=True)
    torch.optim.SGD(net.parameters(), lr=0.1)


IOPRIO_GET = {"x86_64": 252, "aarch64": 31}  # the ioprio_get syscall's number, where known


def server_state():
    """What a child could change of the server, or leave in the sandbox, with its own uid's rights alone: resource
    limits (prlimit), nice value, scheduling, CPU affinity, I/O priority, autogroup, SysV IPC objects and keys.
    Taken after the warm-up and compared after each child: a server that differs is replaced, never inherited."""
    import ctypes
    import os
    import platform
    import resource

    state = {"limits": {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")},
             "nice": os.getpriority(os.PRIO_PROCESS, 0), "policy": os.sched_getscheduler(0),
             "priority": os.sched_getparam(0).sched_priority, "cpus": sorted(os.sched_getaffinity(0))}
    if platform.machine() in IOPRIO_GET:
        state["ioprio"] = ctypes.CDLL(None).syscall(IOPRIO_GET[platform.machine()], 1, 0)
    for name in ("/proc/self/autogroup", "/proc/sysvipc/shm", "/proc/sysvipc/msg", "/proc/sysvipc/sem",
                 "/proc/keys"):
        try:
            with open(name) as f:
                text = f.read(1 << 20)
        except OSError:
            text = None
        if name == "/proc/keys" and text:  # which keys exist, not their usage counts or timeouts
            text = sorted(" ".join(line.split()[:1] + line.split()[7:]) for line in text.splitlines())
        state[name] = text
    return state


def _kill_the_rest():
    """Kill every other process of the sandbox (this one is its PID 1 under bubblewrap: kill(-1) reaches all the
    rest; without bubblewrap, all of this claimed uid's) and reap them, orphans included (this process is their
    subreaper): none escapes by double-forking or by a session of its own."""
    import os
    import signal
    import time

    for _ in range(500):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return True
        time.sleep(0.01)
    return False


def _in_helper(function):
    """Whether `function` succeeded, run in a forked process: what it reads (the names of the files a child left)
    never enters the server's memory, which the next child inherits."""
    import os

    pid = os.fork()
    if pid == 0:
        try:
            ok = function()
        except BaseException:  # noqa: BLE001
            ok = False
        os._exit(0 if ok else 1)
    return os.waitpid(pid, 0)[1] == 0


def _wipe(folders):
    """Empty each folder (the private /tmp, /dev/shm, /dev/mqueue), whatever modes a child set: coreutils walk
    any depth and never follow a link. Whether they are empty."""
    import os
    import subprocess

    for folder in folders:
        for argv in (["chmod", "-R", "u+rwx", "--", folder], ["find", folder, "-mindepth", "1", "-delete"]):
            subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=120, check=False)
    return all(not os.listdir(folder) for folder in folders)


def _wait(pid, timeout_s):
    """(wait status, timed out) of child `pid`, killed at `timeout_s`."""
    import os
    import select
    import signal
    import time

    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # a kernel older than 5.3: poll
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status, False
            time.sleep(0.01)
        timed_out = True
    else:
        timed_out = not select.select([pidfd], [], [], timeout_s)[0]
        os.close(pidfd)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1], timed_out


def _child(config, job, fds):
    """The forked child: a session, stdout/stderr and nothing else of the server's, its limits, the home, temp dir
    and argv a cold child has; then the export, and the end a script's process would have (atexit handlers,
    flushed output, the exit status)."""
    import atexit
    import ctypes
    import os
    import resource
    import signal

    code = 1
    try:
        os.setsid()  # its own session and process group: killing its group, or its autogroup, is not the server's
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
        # every inherited descriptor, the control socket above all: a child must not speak for the server
        os.closerange(3, max(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536))
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh Python
        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: dies with the server
        libc.prctl(4, 1)  # PR_SET_DUMPABLE: the server is not; the child may read its own /proc entries
        cpu = config["cpu_s"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        os.chdir(os.path.join(config["base"], job["dir"]))
        os.environ["HOME"] = os.getcwd()  # as a cold child's: its own dir
        if not config["wipe"]:  # no private /tmp: its own dir is its temp dir too
            os.environ["TMPDIR"] = os.getcwd()
        import tempfile
        tempfile.tempdir = None
        sys.argv = [os.path.join(config["base"], "export.py"), "request.json"]
        import torch

        torch.set_num_threads(config["threads"])
        main("request.json")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as an uncaught exception would end the script
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)


def serve(config_json):
    """The warm sandbox's server. It is started inside the sandbox like a cold child (under bubblewrap as the
    namespace's PID 1: a child cannot signal it, and kill(-1) reaches every other process), imports torch and
    warms up torch.export, then reads jobs from the control socket (fd 0): a working dir's name and two pipes. For
    each it forks a child that runs the export there, waits for it (killing it at the time limit), kills whatever
    the child left running, empties /tmp, /dev/shm and /dev/mqueue, checks that nothing of its own state was
    changed, and answers with the child's wait status and whether all is clean. It never reads a submission (each
    child reads its own request after the fork), so no student's data is in what the next child inherits; it is
    not dumpable, so a child cannot read its memory or reach its socket through /proc."""
    import ctypes
    import os
    import signal
    import socket
    import time

    config = json.loads(config_json)
    sys.path[:0] = config["path"]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a handled signal would reach PID 1 from inside
    libc = ctypes.CDLL(None)
    libc.prctl(4, 0)  # PR_SET_DUMPABLE 0
    libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: orphans of a child become this process's, to be reaped
    control = socket.socket(fileno=os.dup(0))
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    environment = dict(os.environ)
    warm_up()
    os.environ.clear()  # as it was: torch sets variables of its own while warming up
    os.environ.update(environment)
    state = server_state()
    control.send(json.dumps({"ready": True}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(control, 4096, 2)
        if not message:
            return
        job = json.loads(message)
        if len(fds) != 2 or not isinstance(job.get("dir"), str) or not job["dir"].isidentifier():
            return
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(config, job, fds)
        for fd in fds:
            os.close(fd)
        status, timed_out = _wait(pid, config["timeout_s"])
        seconds = time.monotonic() - started
        clean = _kill_the_rest()
        clean = _in_helper(lambda: _wipe(config["wipe"])) and server_state() == state and clean
        control.send(json.dumps({"status": status, "timed_out": timed_out, "seconds": seconds,
                                 "clean": clean}).encode())


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(sys.argv[2])
    else:
        main(sys.argv[1])
