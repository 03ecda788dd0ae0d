"""Export: the only code that runs beside student code. It lives in the sandbox's child process.

Run as a script (`python -I export.py request.json`) from the sandbox's scratch dir, so it imports nothing of the
kit: it defines the student's code from plain-text chunks, builds each model the request names, exports it with
torch.export, and writes plain data per model: NAME.json (the graph: each node's aten op, arguments, output shape
with null for the dynamic batch dimension, module path) and NAME.safetensors (the weights). A model that fails writes NAME.error.json instead, and definitions.json
lists the statements that failed. Nothing here is trusted by the grader: it validates and re-runs what it reads.
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


def export_model(model, example_inputs, train=True):
    """(graph, tensors) of `model` run on `example_inputs` in train or eval mode. The batch dimension stays
    dynamic where the code allows it, so one export serves every batch size; code that fixes it exports as is."""
    import torch

    model.train(train)
    batch = [{0: torch.export.Dim.AUTO} for _ in example_inputs]
    exported = torch.export.export(model, tuple(example_inputs), dynamic_shapes=batch)
    tensors = {**exported.state_dict, **exported.constants}
    return graph_of(exported), {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}


def save(name, graph, tensors, out: Path):
    from safetensors.torch import save_file

    save_file(tensors, str(out / f"{name}.safetensors"))
    (out / f"{name}.json").write_text(json.dumps(graph))


def define(chunks):
    """The student's definitions as a module, run one top-level statement at a time: one that fails (an import
    of a module the grader lacks, say) becomes a note, and the rest still run. Chunks keep their labels (file or
    cell) and line numbers for tracebacks."""
    module = types.ModuleType("submission")
    sys.modules["submission"] = module
    notes = []
    for chunk in chunks:
        for stmt in ast.parse(chunk["code"], chunk["label"]).body:
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


def main(request_path):
    import time

    started = time.monotonic()
    request = json.loads(Path(request_path).read_text())
    sys.path[:0] = request.get("path", [])  # the grader's site-packages, when the child runs another interpreter
    import torch

    timings = {"start": time.monotonic() - started}

    out = Path(request["out"])
    module, notes = define(request["chunks"])
    labels = {chunk["label"] for chunk in request["chunks"]}
    (out / "definitions.json").write_text(json.dumps({"notes": notes}))
    timings["define"] = time.monotonic() - started - timings["start"]
    for spec in request["models"]:
        name = spec["name"]
        try:
            torch.manual_seed(spec.get("seed", 0))
            stage = "build"
            model = getattr(module, spec["build"])(*spec.get("args", []), **spec.get("kwargs", {}))
            stage = "export"
            inputs = [torch.randn(*shape) for shape in spec["inputs"]]
            graph, tensors = export_model(model, inputs, train=spec.get("train", True))
            save(name, graph, tensors, out)
        except BaseException as exc:  # noqa: BLE001
            (out / f"{name}.error.json").write_text(json.dumps(failure(stage, exc, labels)))
    timings["export"] = time.monotonic() - started - timings["start"] - timings["define"]
    (out / "timings.json").write_text(json.dumps(timings))  # for the benchmark only; never graded


if __name__ == "__main__":
    main(sys.argv[1])
