"""Rebuild: a student's exported model as a module the grading process can run and train.

It reads only plain data — the graph JSON written by export.py and a safetensors file — never pickle, torch.load
or torch.export.load. Each node's aten op must be on the allowlist below, where it maps to its torch.nn.functional
(or torch) twin; anything else is refused with the op's name. Parameters and buffers keep their original dotted
names, so the rebuilt module's state_dict reads like the student's. Batch norm and dropout follow the rebuilt
module's own .train()/.eval(), whatever mode it was exported in, and buffers only change while training.
"""
import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load as safetensors_load
from safetensors.torch import load_file

FORMAT = "cnnkit-graph/1"


class RebuildError(ValueError):
    """The exported data cannot become a module; the message says why in a student's terms."""


class UnsupportedOps(RebuildError):
    def __init__(self, ops):
        self.ops = sorted(ops)
        super().__init__(
            f"the model uses operation(s) the grader does not run: {', '.join(self.ops)}. Build it from standard "
            "torch.nn layers (Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, Linear, ...) and tensor reshapes.")


def _batch_norm(m, x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled=True):
    use_batch_stats = m.training or running_mean is None
    return F.batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, momentum, eps)


def _max_pool2d(m, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool2d(x, kernel_size, stride or None, padding, dilation, ceil_mode)


def _avg_pool2d(m, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor=None):
    return F.avg_pool2d(x, kernel_size, stride or None, padding, ceil_mode, count_include_pad, divisor)


def _in_place(op):
    """An in-place op. On a buffer (BatchNorm's num_batches_tracked) it only happens while training."""
    def run(m, target, *args):
        if id(target) in m._buffer_ids and not m.training:
            return target
        return op(target, *args)
    return run


OPS = {
    "aten.conv2d.default": lambda m, x, w, b=None, stride=1, padding=0, dilation=1, groups=1:
        F.conv2d(x, w, b, stride, padding, dilation, groups),
    "aten.linear.default": lambda m, x, w, b=None: F.linear(x, w, b),
    "aten.batch_norm.default": _batch_norm,
    "aten.dropout.default": lambda m, x, p, train: F.dropout(x, p, m.training),
    "aten.relu.default": lambda m, x: F.relu(x),
    "aten.relu_.default": _in_place(torch.relu_),
    "aten.max_pool2d.default": _max_pool2d,
    "aten.avg_pool2d.default": _avg_pool2d,
    "aten.adaptive_avg_pool2d.default": lambda m, x, size: F.adaptive_avg_pool2d(x, size),
    "aten.add.Tensor": lambda m, a, b, alpha=1: torch.add(a, b, alpha=alpha),
    "aten.add_.Tensor": _in_place(lambda a, b, alpha=1: a.add_(b, alpha=alpha)),
    "aten.mul.Tensor": lambda m, a, b: torch.mul(a, b),
    "aten.view.default": lambda m, x, size: x.view(size),
    "aten.reshape.default": lambda m, x, size: x.reshape(size),
    "aten.flatten.using_ints": lambda m, x, start=0, end=-1: torch.flatten(x, start, end),
    "aten.mean.dim": lambda m, x, dim, keepdim=False, dtype=None: torch.mean(x, dim, keepdim),
    "aten.cat.default": lambda m, xs, dim=0: torch.cat(xs, dim),
    "aten.slice.Tensor": lambda m, x, dim=0, start=None, end=None, step=1: x[(slice(None),) * dim + (slice(start, end, step),)],
    "aten.pad.default": lambda m, x, pad, mode="constant", value=None: F.pad(x, pad, mode, value),
    "aten.constant_pad_nd.default": lambda m, x, pad, value=0: F.pad(x, pad, "constant", value),
    "aten.sym_size.int": lambda m, x, dim: x.size(dim),  # the dynamic batch size
    "_operator.mul": lambda m, a, b: a * b,
    "_operator.floordiv": lambda m, a, b: a // b,
    "aten.detach.default": lambda m, x: x.detach(),
    "aten.clone.default": lambda m, x, memory_format=None: x.clone(),
    "aten.contiguous.default": lambda m, x, memory_format=None: x.contiguous(),
}


class Rebuilt(nn.Module):
    """A graph of allowlisted ops over the exported parameters and buffers."""

    def __init__(self, graph: dict, tensors: dict):
        super().__init__()
        if not isinstance(graph, dict) or graph.get("format") != FORMAT:
            raise RebuildError("the exported graph is not in the grader's format")
        unsupported = {n["op"] for n in graph["nodes"] if n["op"] not in OPS}
        if unsupported:
            raise UnsupportedOps(unsupported)
        self.graph = graph
        self._state = {}  # graph input name -> dotted target of its parameter/buffer/constant
        self._inputs = []
        for spec in graph["inputs"]:
            if spec["kind"] == "input":
                self._inputs.append(spec["name"])
                continue
            if spec["target"] not in tensors:
                raise RebuildError(f"the exported weights lack {spec['target']}")
            owner, leaf = self._owner(spec["target"])
            tensor = tensors[spec["target"]]
            if spec["kind"] == "parameter":
                owner.register_parameter(leaf, nn.Parameter(tensor, requires_grad=tensor.is_floating_point()))
            else:
                owner.register_buffer(leaf, tensor, persistent=spec["kind"] == "buffer")
            self._state[spec["name"]] = spec["target"]

    def _owner(self, target):
        """The submodule that holds `target` ("layer1.0.weight" -> self.layer1.0), made on the way."""
        *path, leaf = target.split(".")
        module = self
        for part in path:
            if not hasattr(module, part) or not isinstance(getattr(module, part), nn.Module):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module, leaf

    def forward(self, *inputs):
        return self.run(*inputs)[0]

    def run(self, *inputs, inspect=None):
        """(output, {module path: output shape}). A module's output is the value of the last node inside it,
        recorded for every enclosing path too ("layer2.2" and "layer2"); buffer updates do not count.
        `inspect(node, value)`, when given, sees every node's value as it is made."""
        if len(inputs) != len(self._inputs):
            raise TypeError(f"expected {len(self._inputs)} input(s), got {len(inputs)}")
        state = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        self._buffer_ids = {id(b) for b in self.buffers()}
        env = dict(zip(self._inputs, inputs))
        env.update({name: state[target] for name, target in self._state.items()})

        def resolve(a):
            if isinstance(a, list):
                return [resolve(v) for v in a]
            if isinstance(a, dict):
                if "ref" in a:
                    return env[a["ref"]]
                if "dtype" in a:
                    return getattr(torch, a["dtype"])
                return None  # device / memory format: the grader's own choice
            return a

        shapes = {}
        for node in self.graph["nodes"]:
            value = env[node["name"]] = OPS[node["op"]](
                self, *resolve(node["args"]), **{k: resolve(v) for k, v in node["kwargs"].items()})
            if inspect:
                inspect(node, value)
            if isinstance(value, torch.Tensor) and id(value) not in self._buffer_ids and node["module"]:
                parts = node["module"].split(".")
                for i in range(1, len(parts) + 1):
                    shapes[".".join(parts[:i])] = tuple(value.shape)
        out = resolve(self.graph["output"])
        return (out[0] if isinstance(out, list) and len(out) == 1 else out), shapes

    def convolutions(self):
        """[(module path, weight shape (out, in, kh, kw), stride)] of every conv the graph runs, in order."""
        found = []
        for node in self.graph["nodes"]:
            if node["op"] == "aten.conv2d.default":
                args = node["args"]
                weight = self.get_parameter(self._state[args[1]["ref"]])
                stride = args[3] if len(args) > 3 else node["kwargs"].get("stride", [1, 1])
                stride = tuple(stride) if isinstance(stride, list) else (stride, stride)
                found.append((node["module"], tuple(weight.shape), stride))
        return found


MAX_ELEMENTS = 1 << 27  # per intermediate tensor: 512 MB of float32


def dry_run(graph, tensors, input_shapes, max_elements=MAX_ELEMENTS):
    """Run the graph on the meta device (shapes only, no memory) and refuse any tensor above `max_elements`,
    so a crafted graph cannot exhaust the grading process's memory."""
    meta = Rebuilt(graph, {k: torch.empty_like(v, device="meta") for k, v in tensors.items()})
    for name, t in meta.state_dict().items():
        if t.numel() > max_elements:
            raise RebuildError(f"the weight {name} has {t.numel():,} elements; the grader's limit is {max_elements:,}")

    def inspect(node, value):
        if isinstance(value, torch.Tensor) and value.numel() > max_elements:
            raise RebuildError(f"{node['module'] or 'the model'} makes a tensor of shape {tuple(value.shape)}; "
                               f"the grader's limit is {max_elements:,} elements")

    with torch.no_grad():
        meta.eval().run(*(torch.empty(s, device="meta") for s in input_shapes), inspect=inspect)


def from_bytes(graph_bytes: bytes, tensor_bytes: bytes, input_shapes) -> Rebuilt:
    """The rebuilt module from the exported JSON and safetensors bytes, after a dry run at `input_shapes`."""
    try:
        graph = json.loads(graph_bytes)
        tensors = safetensors_load(tensor_bytes)
    except ValueError as exc:
        raise RebuildError(f"the exported files are unreadable ({type(exc).__name__})") from exc
    dry_run(graph, tensors, input_shapes)
    return Rebuilt(graph, tensors)


def load(folder, name) -> Rebuilt:
    """The rebuilt module NAME from FOLDER/NAME.json and FOLDER/NAME.safetensors (the kit's own files)."""
    folder = Path(folder)
    return Rebuilt(json.loads((folder / f"{name}.json").read_text()), load_file(str(folder / f"{name}.safetensors")))
