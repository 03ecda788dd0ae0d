"""Rebuild: a student's exported model as a module the grading process can run and train.

It reads only plain data — the graph JSON written by export.py and a safetensors file — never pickle, torch.load
or torch.export.load. Each node's aten op must be on the allowlist below, where it maps to its torch.nn.functional
(or torch) twin; anything else is refused with the op's name. Parameters and buffers keep their original dotted
names, so the rebuilt module's state_dict reads like the student's. Batch norm and dropout follow the rebuilt
module's own .train()/.eval(), whatever mode it was exported in, and buffers only change while training.

Everything in the JSON is hostile input: the graph's structure and every argument are checked against the op's
signature before anything runs (`check_graph`), size arithmetic is bounded while it runs, and `from_bytes`
dry-runs the graph on the meta device at every batch size the grader will use, refusing it if its tensors would
not fit the grading process.
"""
import inspect as pyinspect
import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import load_file

FORMAT = "cnnkit-graph/1"

MAX_NODES = 20_000  # nodes, and graph inputs: torchvision's ResNet-152 exports 670 nodes and 933 inputs
MAX_NAME = 256  # characters in a name, weight name, op or module path (the reference net's longest: 49)
MAX_DEPTH = 32  # dotted parts of a module path or weight name (ResNet-152's deepest: 4)
MAX_INT = 1 << 31  # |an integer argument|; a size computed while running stays within it too
MAX_INDEX = 1 << 63  # |a slice bound|: torch.export writes "to the end" as 2**63 - 1
MAX_INTS = 8  # entries of an int list: kernel size, stride, padding, dims
MAX_DIMS = 16  # entries of a size list (view, reshape, pad) and of a node's shape
MAX_TENSORS = 64  # tensors in one cat (DenseNet-201 cats at most 49)
MAX_OUTPUTS = 16
KINDS = {"parameter", "buffer", "constant", "input"}
DTYPES = {"float32", "float64", "float16", "bfloat16"}
MEMORY_FORMATS = {"contiguous_format", "preserve_format", "channels_last"}
LAYOUTS = {"strided"}
PAD_MODES = {"constant", "reflect", "replicate", "circular"}


class RebuildError(ValueError):
    """The exported data cannot become a module; the message says why in a student's terms."""


class UnsupportedOps(RebuildError):
    def __init__(self, ops):
        self.ops = sorted(ops)
        shown = ", ".join(op if op.isprintable() else _clip(op) for op in self.ops[:10])
        shown += f" and {len(self.ops) - 10} more" if len(self.ops) > 10 else ""
        super().__init__(
            f"the model uses operation(s) the grader does not run: {shown}. Build it from standard "
            "torch.nn layers (Conv2d, BatchNorm2d, ReLU, MaxPool2d, AvgPool2d, Linear, ...) and tensor reshapes.")


# ---- the allowlist: each op's function (named as aten names its arguments) and signature ----

class Param(NamedTuple):
    name: str
    type: str  # a key of TYPES, with "?" when None is allowed too
    required: bool
    keyword_only: bool


class Op(NamedTuple):
    run: Callable
    params: tuple
    returns: str  # "Tensor" or "SymInt"


def op(run, signature, returns="Tensor"):
    """An allowlisted op from its function and an aten-like signature ("Tensor self, int[] stride"). The names
    must be the function's own (after the module argument), so a keyword argument means the same to both;
    which are optional or keyword-only comes from the function's defaults."""
    declared = [part.split(" ") for part in signature.split(", ")]
    params = list(pyinspect.signature(run).parameters.values())[1:]
    if [name for _, name in declared] != [p.name for p in params]:
        raise TypeError(f"{run.__name__}: signature {signature!r} does not name the function's arguments")
    return Op(run, tuple(Param(p.name, type_, p.default is p.empty, p.kind is p.KEYWORD_ONLY)
                         for (type_, _), p in zip(declared, params)), returns)


def _frozen(m, tensor):
    """An in-place op on a buffer (BatchNorm's num_batches_tracked) only happens while training."""
    return id(tensor) in m._buffer_ids and not m.training


def _conv2d(m, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return F.conv2d(input, weight, bias, stride, padding, dilation, groups)


def _batch_norm(m, input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled=True):
    use_batch_stats = m.training or running_mean is None
    if input.is_meta:  # the dry run: torch's meta batch norm is a slow Python decomposition; only shapes matter
        return _meta_batch_norm(input, (weight, bias, running_mean, running_var), use_batch_stats)
    return F.batch_norm(input, running_mean, running_var, weight, bias, use_batch_stats, momentum, eps)


def _meta_batch_norm(input, per_channel, use_batch_stats):
    """What F.batch_norm refuses, refused alike; else an output of the input's shape (on the meta device)."""
    channels = input.shape[1] if input.dim() >= 2 else None
    if any(t is not None and (channels is None or t.shape != (channels,)) for t in per_channel):
        raise RuntimeError(f"batch_norm: the per-channel tensors do not fit an input of shape {tuple(input.shape)}")
    if use_batch_stats and input.numel() == channels:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {input.shape}")
    return torch.empty_like(input)


def _max_pool2d(m, self, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return F.max_pool2d(self, kernel_size, stride or None, padding, dilation, ceil_mode)


def _avg_pool2d(m, self, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    return F.avg_pool2d(self, kernel_size, stride or None, padding, ceil_mode, count_include_pad, divisor_override)


def _relu_(m, self):
    return self if _frozen(m, self) else torch.relu_(self)


def _add_(m, self, other, *, alpha=1):
    return self if _frozen(m, self) else self.add_(other, alpha=alpha)


def _size(value):
    """A size computed while running, refused beyond MAX_INT: chained products of sizes would otherwise grow
    without bound (40 squarings of a batch size hang the process)."""
    if not -MAX_INT <= value <= MAX_INT:
        raise RebuildError(f"the model computes a size beyond the grader's limit of ±2**31 ({_clip(value)})")
    return value


def _zeros_like(m, self, *, dtype=None, layout=None, device=None, pin_memory=None, memory_format=None):
    return torch.zeros_like(self, dtype=dtype)


def _new_zeros(m, self, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    return self.new_zeros(size, dtype=dtype)


def _zeros(m, size, *, dtype=None, layout=None, device=None, pin_memory=None):
    """Zeros on the device of the run's input (the grader's choice, whatever the code named)."""
    return torch.zeros(size, dtype=dtype, device=m._device)


def _sym_mul(m, a, b):
    return _size(a * b)


def _sym_floordiv(m, a, b):
    if b == 0:
        raise RebuildError("the model divides a size by zero")
    return _size(a // b)


OPS = {
    "aten.conv2d.default": op(_conv2d, "Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
                                       "int[] dilation, int groups"),
    "aten.linear.default": op(lambda m, input, weight, bias=None: F.linear(input, weight, bias),
                              "Tensor input, Tensor weight, Tensor? bias"),
    "aten.batch_norm.default": op(_batch_norm, "Tensor input, Tensor? weight, Tensor? bias, Tensor? running_mean, "
                                               "Tensor? running_var, bool training, float momentum, float eps, "
                                               "bool cudnn_enabled"),
    "aten.dropout.default": op(lambda m, input, p, train: F.dropout(input, p, m.training),
                               "Tensor input, float p, bool train"),
    "aten.relu.default": op(lambda m, self: F.relu(self), "Tensor self"),
    "aten.relu_.default": op(_relu_, "Tensor self"),
    "aten.max_pool2d.default": op(_max_pool2d, "Tensor self, int[] kernel_size, int[] stride, int[] padding, "
                                               "int[] dilation, bool ceil_mode"),
    "aten.avg_pool2d.default": op(_avg_pool2d, "Tensor self, int[] kernel_size, int[] stride, int[] padding, "
                                               "bool ceil_mode, bool count_include_pad, int? divisor_override"),
    "aten.adaptive_avg_pool2d.default": op(lambda m, self, output_size: F.adaptive_avg_pool2d(self, output_size),
                                           "Tensor self, SymInt[] output_size"),
    "aten.add.Tensor": op(lambda m, self, other, *, alpha=1: torch.add(self, other, alpha=alpha),
                          "Tensor self, Tensor|Scalar other, Scalar alpha"),
    "aten.add_.Tensor": op(_add_, "Tensor self, Tensor|Scalar other, Scalar alpha"),
    "aten.mul.Tensor": op(lambda m, self, other: torch.mul(self, other), "Tensor self, Tensor|Scalar other"),
    "aten.view.default": op(lambda m, self, size: self.view(size), "Tensor self, SymInt[] size"),
    "aten.reshape.default": op(lambda m, self, shape: self.reshape(shape), "Tensor self, SymInt[] shape"),
    "aten.flatten.using_ints": op(lambda m, self, start_dim=0, end_dim=-1: torch.flatten(self, start_dim, end_dim),
                                  "Tensor self, int start_dim, int end_dim"),
    "aten.mean.dim": op(lambda m, self, dim, keepdim=False, *, dtype=None: torch.mean(self, dim, keepdim, dtype=dtype),
                        "Tensor self, int[]? dim, bool keepdim, ScalarType? dtype"),
    "aten.cat.default": op(lambda m, tensors, dim=0: torch.cat(tensors, dim), "Tensor[] tensors, int dim"),
    "aten.slice.Tensor": op(lambda m, self, dim=0, start=None, end=None, step=1:
                            torch.ops.aten.slice.Tensor(self, dim, start, end, step),
                            "Tensor self, int dim, SymIndex? start, SymIndex? end, SymInt step"),
    "aten.pad.default": op(lambda m, self, pad, mode="constant", value=None: F.pad(self, pad, mode, value),
                           "Tensor self, SymInt[] pad, PadMode mode, float? value"),
    "aten.constant_pad_nd.default": op(lambda m, self, pad, value=0: F.pad(self, pad, "constant", value),
                                       "Tensor self, SymInt[] pad, Scalar value"),
    "aten.sym_size.int": op(lambda m, self, dim: self.size(dim), "Tensor self, int dim", returns="SymInt"),
    "_operator.mul": op(_sym_mul, "SymInt a, SymInt b", returns="SymInt"),
    "_operator.floordiv": op(_sym_floordiv, "SymInt a, SymInt b", returns="SymInt"),
    "aten.zeros_like.default": op(_zeros_like, "Tensor self, ScalarType? dtype, Layout? layout, Device? device, "
                                               "bool? pin_memory, MemoryFormat? memory_format"),
    "aten.new_zeros.default": op(_new_zeros, "Tensor self, SymInt[] size, ScalarType? dtype, Layout? layout, "
                                             "Device? device, bool? pin_memory"),
    "aten.zeros.default": op(_zeros, "SymInt[] size, ScalarType? dtype, Layout? layout, Device? device, "
                                     "bool? pin_memory"),
    "aten.detach.default": op(lambda m, self: self.detach(), "Tensor self"),
    "aten.clone.default": op(lambda m, self, *, memory_format=None: self.clone(),
                             "Tensor self, MemoryFormat? memory_format"),
    "aten.contiguous.default": op(lambda m, self, *, memory_format=None: self.contiguous(),
                                  "Tensor self, MemoryFormat? memory_format"),
}


# ---- checking the graph before anything runs ----

def _clip(value, limit=40):
    """`value` for a message, cut short: hostile data may be megabytes long, or a list of millions."""
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    if isinstance(value, dict):
        return f"a reference to {_clip(value['ref'])}" if isinstance(value.get("ref"), str) else "an object"
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} digits)"


@contextmanager
def _at(where):
    """Say where in the graph a check failed."""
    try:
        yield
    except RebuildError as exc:
        raise RebuildError(f"the exported graph is malformed: {where}: {exc}") from None


class _Scope:
    """The graph's names while it is checked in order: those made so far (with their kind) and those to come."""

    def __init__(self):
        self.known, self.ahead = {}, set()

    def kind(self, value):
        """"Tensor" or "SymInt" for a reference to a value made so far, None for anything not a reference."""
        if not (isinstance(value, dict) and "ref" in value):
            return None
        name = value["ref"]
        if len(value) != 1 or not isinstance(name, str):
            raise RebuildError('a reference must be {"ref": name}')
        if name in self.known:
            return self.known[name]
        if name in self.ahead:
            raise RebuildError(f"it uses {_clip(name)} before the node that makes it")
        raise RebuildError(f"it uses {_clip(name)}, which the graph does not define")


def _int(v, s=None, bound=MAX_INT):
    return type(v) is int and -bound <= v <= bound


def _number(v, s=None):
    return _int(v) or (type(v) is float and math.isfinite(v))


def _tensor(v, s):
    return s.kind(v) == "Tensor"


def _sym_int(v, s):
    return _int(v) or s.kind(v) == "SymInt"


def _scalar(v, s):
    return _number(v) or s.kind(v) == "SymInt"


def _list_of(item, most, bare=True):
    """A list of at most `most` items (or, where aten allows it, one bare item)."""
    def check(v, s):
        if not isinstance(v, list):
            return bare and item(v, s)
        return (bare or len(v) > 0) and len(v) <= most and all(item(x, s) for x in v)
    return check


def _named(key, names):
    """{key: one of names}, as export.py writes a dtype or memory format."""
    return lambda v, s: (isinstance(v, dict) and list(v) == [key] and isinstance(v[key], str) and v[key] in names)


TYPES = {  # type -> (check(value, scope), what it must be, in words)
    "Tensor": (_tensor, "a tensor of the graph"),
    "Tensor[]": (_list_of(_tensor, MAX_TENSORS, bare=False), f"a list of 1 to {MAX_TENSORS} tensors of the graph"),
    "Tensor|Scalar": (lambda v, s: _tensor(v, s) or _scalar(v, s), "a tensor of the graph or a finite number"),
    "Scalar": (_scalar, "a finite number"),
    "int": (_int, "an integer within ±2**31"),
    "int[]": (_list_of(_int, MAX_INTS), f"an integer or a list of at most {MAX_INTS} integers within ±2**31"),
    "SymInt": (_sym_int, "an integer within ±2**31 or a size computed by the graph"),
    "SymInt[]": (_list_of(_sym_int, MAX_DIMS),
                 f"a list of at most {MAX_DIMS} sizes (integers within ±2**31 or computed by the graph)"),
    "SymIndex": (lambda v, s: _int(v, bound=MAX_INDEX) or s.kind(v) == "SymInt",
                 "an integer within ±2**63 or a size computed by the graph"),
    "float": (_number, "a finite number"),
    "bool": (lambda v, s: type(v) is bool, "true or false"),
    "ScalarType": (_named("dtype", DTYPES), f"a dtype: one of {', '.join(sorted(DTYPES))}"),
    "MemoryFormat": (_named("memory_format", MEMORY_FORMATS), f"one of {', '.join(sorted(MEMORY_FORMATS))}"),
    "PadMode": (lambda v, s: isinstance(v, str) and v in PAD_MODES, f"one of {', '.join(sorted(PAD_MODES))}"),
    "Layout": (_named("layout", LAYOUTS), "the strided layout"),
    "Device": (_named("device", {"any"}), "a device (the grader picks its own)"),
}


def _check_arg(param, value, scope):
    type_ = param.type.removesuffix("?")
    if value is None and param.type.endswith("?"):
        return
    check, words = TYPES[type_]
    if not check(value, scope):
        raise RebuildError(f"argument {param.name!r} must be {words}{' or null' if param.type.endswith('?') else ''}, "
                           f"not {_clip(value)}")


def _check_call(op_, args, kwargs, scope):
    """Every argument, positional or keyword, against the op's signature; unknown keywords are refused."""
    positional = [p for p in op_.params if not p.keyword_only]
    if len(args) > len(positional):
        raise RebuildError(f"it takes at most {len(positional)} positional argument(s), not {len(args)}")
    given = {p.name: (p, a) for p, a in zip(positional, args)}
    by_name = {p.name: p for p in op_.params}
    for key, value in kwargs.items():
        if key not in by_name:
            raise RebuildError(f"it takes no argument named {_clip(key)}")
        if key in given:
            raise RebuildError(f"argument {key!r} is given twice")
        given[key] = (by_name[key], value)
    for p in op_.params:
        if p.name in given:
            _check_arg(*given[p.name], scope)
        elif p.required:
            raise RebuildError(f"argument {p.name!r} is missing")


def _check_text(value, what):
    if not isinstance(value, str) or len(value) > MAX_NAME or value.count(".") >= MAX_DEPTH:
        raise RebuildError(f"{what} must be a text of at most {MAX_NAME} characters and {MAX_DEPTH} dotted parts, "
                           f"not {_clip(value)}")


def _check_target(target):
    """A dotted weight name ("layer1.0.weight") whose parts can become submodules and attributes; a part that
    the module already uses ("training", "forward") is refused when it is registered."""
    _check_text(target, "a weight name")
    if not all(part and part.isprintable() for part in target.split(".")):
        raise RebuildError(f"the weight name {_clip(target)} has an empty or unprintable part")


def _check_inputs(inputs, tensors, scope):
    if not isinstance(inputs, list) or len(inputs) > MAX_NODES:
        raise RebuildError(f"the graph's inputs must be a list of at most {MAX_NODES:,}")
    for i, spec in enumerate(inputs):
        if not isinstance(spec, dict):
            raise RebuildError(f"graph input {i} must be an object")
        name, kind = spec.get("name"), spec.get("kind")
        _check_text(name, f"graph input {i}'s name")
        if name in scope.known:
            raise RebuildError(f"the graph defines {_clip(name)} twice")
        if not isinstance(kind, str) or kind not in KINDS:
            raise RebuildError(f"graph input {_clip(name)} has kind {_clip(kind)}, not one of {', '.join(sorted(KINDS))}")
        if kind != "input":
            _check_target(spec.get("target"))
            if spec["target"] not in tensors:
                raise RebuildError(f"the exported weights lack {spec['target']}")
        scope.known[name] = "Tensor"


def _check_node(node, scope):
    name = node.get("name")
    if name in scope.known:
        raise RebuildError("its name is used twice")
    args, kwargs, shape = node.get("args"), node.get("kwargs"), node.get("shape")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise RebuildError("its args must be a list and its kwargs an object")
    _check_text(node.get("module"), "its module path")
    _check_text(node.get("module_type"), "its module type")
    if shape is not None and not (isinstance(shape, list) and len(shape) <= MAX_DIMS
                                  and all(d is None or _int(d) for d in shape)):
        raise RebuildError(f"its shape must be null or a list of at most {MAX_DIMS} integers or nulls")
    op_ = OPS[node["op"]]
    _check_call(op_, args, kwargs, scope)
    scope.known[name] = op_.returns


def _check_nodes(nodes, scope):
    """Each node's name, op, arguments (references only to graph inputs and earlier nodes), module and shape."""
    if not isinstance(nodes, list) or len(nodes) > MAX_NODES:
        raise RebuildError(f"the graph must be a list of at most {MAX_NODES:,} nodes")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise RebuildError(f"node {i} of the graph must be an object")
        _check_text(node.get("name"), f"node {i}'s name")
        _check_text(node.get("op"), f"node {i}'s op")
    unsupported = {node["op"] for node in nodes if node["op"] not in OPS}
    if unsupported:
        raise UnsupportedOps(unsupported)
    scope.ahead = {node["name"] for node in nodes}
    for i, node in enumerate(nodes):
        with _at(f"node {i} ({_clip(node['name'])}, {node['op']})"):
            _check_node(node, scope)


def _check_output(output, scope):
    refs = output if isinstance(output, list) else [output]
    with _at("its output"):
        if len(refs) > MAX_OUTPUTS or not all(_tensor(r, scope) for r in refs):
            raise RebuildError(f"it must be a tensor of the graph or a list of at most {MAX_OUTPUTS}")


def check_graph(graph, tensors):
    """Refuse a graph that is not well formed, before anything of it runs: the format, the inputs (each weight
    present), every node's op on the allowlist and its arguments of the types the op's signature allows,
    references only to what comes earlier, and the output."""
    if not isinstance(graph, dict) or graph.get("format") != FORMAT:
        raise RebuildError("the exported graph is not in the grader's format")
    scope = _Scope()
    _check_inputs(graph.get("inputs"), tensors, scope)
    _check_nodes(graph.get("nodes"), scope)
    _check_output(graph.get("output"), scope)


def bind(node):
    """{argument name: value} of a checked node, positional and keyword arguments alike."""
    params = OPS[node["op"]].params
    return {**{p.name: a for p, a in zip(params, node["args"])}, **node["kwargs"]}


# ---- the module ----

class Rebuilt(nn.Module):
    """A graph of allowlisted ops over the exported parameters and buffers."""

    def __init__(self, graph: dict, tensors: dict):
        super().__init__()
        check_graph(graph, tensors)
        self.graph = graph
        self._state = {}  # graph input name -> dotted target of its parameter/buffer/constant
        self._inputs = []
        for spec in graph["inputs"]:
            if spec["kind"] == "input":
                self._inputs.append(spec["name"])
                continue
            tensor = tensors[spec["target"]]
            try:
                owner, leaf = self._owner(spec["target"])
                if spec["kind"] == "parameter":
                    owner.register_parameter(leaf, nn.Parameter(tensor, requires_grad=tensor.is_floating_point()))
                else:
                    owner.register_buffer(leaf, tensor, persistent=spec["kind"] == "buffer")
            except (KeyError, AttributeError, TypeError, RuntimeError) as exc:  # a name taken by the module itself
                raise RebuildError(f"the weight {spec['target']} cannot be rebuilt: {exc}") from None
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
        self._device = inputs[0].device if inputs else torch.device("cpu")  # where created tensors go
        env = dict(zip(self._inputs, inputs))
        env.update({name: state[target] for name, target in self._state.items()})

        def resolve(a):
            if isinstance(a, list):
                return [resolve(v) for v in a]
            if isinstance(a, dict):
                if "ref" in a:
                    return env[a["ref"]]
                if "dtype" in a:
                    return getattr(torch, a["dtype"])  # one of DTYPES
                return None  # memory format, layout, device: the grader's own choice
            return a

        shapes = {}
        for node in self.graph["nodes"]:
            value = env[node["name"]] = OPS[node["op"]].run(
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
        """[(module path, weight shape (out, in, kh, kw), stride)] of every conv the graph runs, in order; a
        weight the graph computes rather than reads is refused."""
        state = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        found = []
        for node in self.graph["nodes"]:
            if node["op"] == "aten.conv2d.default":
                args = bind(node)
                target = self._state.get(args["weight"]["ref"])
                if target is None:
                    raise RebuildError(f"the convolution in {node['module'] or 'the model'} computes its weight; "
                                       "the grader reads convolution weights from parameters")
                stride = args.get("stride", [1, 1])
                stride = tuple(stride) if isinstance(stride, list) else (stride, stride)
                found.append((node["module"], tuple(state[target].shape), stride))
        return found


# ---- the dry run: shapes only, at every batch size the grader uses ----

MAX_ELEMENTS = 1 << 27  # per intermediate tensor: 512 MiB of float32
# All the tensors one run makes, together: under autograd each stays alive for backward, so their sum bounds what a
# training step keeps. Measured: the reference ResNet50_layer4 makes 113,461,200 elements at batch 200 (433 MiB of
# float32; 18,153,792 at batch 32). 3 * 2**27 = 402,653,184 (1.5 GiB) is 3.5 times that, and with torch itself
# (~0.5 GB) and the reference's weights, gradients and Adam state (0.24 GB) fits a 3 GB grading process.
MAX_TOTAL_ELEMENTS = 3 << 27


def _elements(t):
    """`t`'s size in float32 elements: a float64 tensor counts twice."""
    return t.numel() * max(1, t.element_size() // 4)


def _meta_run(meta, shapes, max_elements, max_total):
    """Run the meta module on inputs of `shapes`, refusing any tensor above `max_elements` and all of them
    together above `max_total`."""
    inputs = [torch.empty(s, device="meta") for s in shapes]
    seen = {id(t) for t in (*inputs, *meta.parameters(), *meta.buffers())}  # in-place results are not new
    total = 0
    batch = f" at batch {shapes[0][0]}" if shapes and shapes[0] else ""

    def inspect(node, value):
        nonlocal total
        if not isinstance(value, torch.Tensor) or id(value) in seen:
            return
        seen.add(id(value))
        where, size = node["module"] or "the model", _elements(value)
        if size > max_elements:
            raise RebuildError(f"{where} makes a tensor of shape {tuple(value.shape)}{batch}; the grader's limit is "
                               f"{max_elements:,} elements")
        total += size
        if total > max_total:
            raise RebuildError(f"the model's tensors{batch} add up to more than the grader's limit of {max_total:,} "
                               f"elements for all of one run together (reached in {where})")

    with torch.no_grad():
        meta.run(*inputs, inspect=inspect)


def dry_run(graph, tensors, input_shapes, batches=(), max_elements=MAX_ELEMENTS, max_total=MAX_TOTAL_ELEMENTS,
            sizes=()):
    """Run the graph on the meta device (shapes only, no memory) at `input_shapes`, again with every input's
    batch dimension set to each of `batches`, and at each of `sizes` (other input shapes: a net graded at 32 x 32
    and at 128 x 128), refusing it if a weight or tensor exceeds `max_elements` or one
    run's tensors together exceed `max_total`, so a crafted graph cannot exhaust the grading process's memory.
    At the export's own shapes the graph must run; at another batch size or size it may fail (fixed in the code):
    it then fails the same way when the checks run it, before allocating more than was seen here."""
    meta = Rebuilt(graph, {k: torch.empty_like(v, device="meta") for k, v in tensors.items()}).eval()
    for name, t in meta.state_dict().items():
        if _elements(t) > max_elements:
            raise RebuildError(f"the weight {name} has {t.numel():,} elements; the grader's limit is {max_elements:,}")
    try:
        _meta_run(meta, input_shapes, max_elements, max_total)
    except RebuildError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a crafted graph makes torch raise
        raise RebuildError(f"the exported model does not run on its own example input "
                           f"({type(exc).__name__}: {_clip(str(exc), 200)})") from None
    others = [[[batch, *s[1:]] for s in input_shapes] for batch in sorted(set(batches))]
    others += [[list(s) for s in shapes] for shapes in sizes]  # each: one shape per input
    for shapes in others:
        if shapes == [list(s) for s in input_shapes]:
            continue
        try:
            _meta_run(meta, shapes, max_elements, max_total)
        except RebuildError:
            raise
        except Exception:  # noqa: BLE001, S110 - a shape error: the batch is fixed in the code, see above
            pass


def from_bytes(graph_bytes: bytes, tensor_bytes: bytes, input_shapes, batches=(), sizes=()) -> Rebuilt:
    """The rebuilt module from the exported JSON and safetensors bytes, after a dry run at `input_shapes`, at
    each batch size in `batches` and at each of `sizes` (every shape set the grader will run it at)."""
    try:
        graph = json.loads(graph_bytes)
        tensors = safetensors_load(tensor_bytes)
    except (ValueError, RecursionError, SafetensorError) as exc:  # RecursionError: JSON nested too deep
        raise RebuildError(f"the exported files are unreadable ({type(exc).__name__})") from None
    dry_run(graph, tensors, input_shapes, batches, sizes=sizes)
    return Rebuilt(graph, tensors)


def load(folder, name) -> Rebuilt:
    """The rebuilt module NAME from FOLDER/NAME.json and FOLDER/NAME.safetensors (the kit's own files)."""
    folder = Path(folder)
    return Rebuilt(json.loads((folder / f"{name}.json").read_text()), load_file(str(folder / f"{name}.safetensors")))
