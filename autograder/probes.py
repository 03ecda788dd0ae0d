"""What every assignment's hidden checks share, written once: run a rebuilt model and read the shape after each
module, count parameters, read convolutions and their strides, silence a block's main path, and the three checks
of the short training run. An assignment's checks.py imports these and reads like a table of what to build.

Everything here runs in the grading process on rebuilt models (autograder.rebuild.Rebuilt), never on student code.
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from .check import CheckFailed, expect
from .rebuild import bind
from .train import outcome

__all__ = ["CheckFailed", "expect", "count", "shapes_of", "parameters", "listed_parameters", "listed_shapes",
           "last_linear", "part_model", "part_shapes", "convolutions", "input_convolutions", "flops", "weighted_layers",
           "activation_adds", "silenced", "shortcut_only", "projection", "main_path_parameters", "optimizer_steps",
           "option_differences", "training_checks"]


def count(n) -> str:
    return f"{n:,}"


def shapes_of(model, *shape):
    """(output shape, {module path: output shape}) of one eval-mode run on a random input of `shape`."""
    with torch.no_grad():
        out, shapes = model.eval().run(torch.randn(*shape))
    return tuple(out.shape), shapes


def parameters(model, prefix="") -> int:
    return sum(p.numel() for name, p in model.named_parameters() if name.startswith(prefix))


def listed_parameters(submission, name, prefix="") -> int:
    """Parameters of export `name` under `prefix`: from the rebuilt model, or from the list the submission gave when
    the model could be built but not run (or was only built: a spec with "export": false)."""
    if submission.available(name):
        return parameters(submission.model(name), prefix)
    return sum(math.prod(shape) for key, shape in listed_shapes(submission, name).items() if key.startswith(prefix))


def listed_shapes(submission, name) -> dict:
    """{parameter: shape} as the submission's export `name` listed them when built; raises why it is unavailable
    when there is no list."""
    listed = submission.parameter_shapes.get(name)
    if listed is None:
        submission.model(name)  # raises: why the model is unavailable
    return listed


def last_linear(submission, name):
    """(out, in) of the last 2-D parameter export `name` listed when built (its classifier), or None: a builder's
    num_classes is read from what it built, so that model needs no export of its own."""
    rows = [tuple(shape) for shape in listed_shapes(submission, name).values() if len(shape) == 2]
    return rows[-1] if rows else None


def part_model(submission, name, part, batch=2, spec=None):
    """(model, input shape) that runs `part` of export `name`: the whole model on its own input when it runs, else
    the part exported alone on the input its spec gives it, so a right stage earns its points beside a broken one."""
    if submission.available(name):
        return submission.model(name), (batch, *spec["inputs"][0][1:])
    if f"{name}.{part}" not in submission.models:
        submission.model(name)  # raises: why the model is unavailable
    return submission.model(f"{name}.{part}"), (batch, *spec["parts"][part][0][1:])


def part_shapes(submission, name, part, batch=2, spec=None):
    """({module path: output shape}, convolutions) of a run through `part` of export `name`."""
    model, shape = part_model(submission, name, part, batch, spec)
    return shapes_of(model, *shape)[1], model.convolutions()


def convolutions(model, prefix=""):
    """[(path, weight shape, stride)] of the convolutions the graph runs under `prefix`, in order."""
    return [c for c in model.convolutions() if c[0].startswith(prefix)]


def input_convolutions(model) -> set:
    """Module paths of the convolutions that read the model's input itself: in a block, the first of the main
    path and the projection (a bottleneck's 1x1 projection and its last 1x1 can have the same shape)."""
    inputs = set(model._inputs)
    return {node["module"] for node in model.graph["nodes"] if node["op"] == "aten.conv2d.default"
            and bind(node)["input"].get("ref") in inputs}


def flops(model, *shape) -> int:
    """Floating-point operations of one eval-mode run on an input of `shape`, counted here by PyTorch's own
    counter (torch.utils.flop_counter: 2 per multiply-add) on the rebuilt graph, never taken from a submission."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval().run(torch.randn(*shape))
    return counter.get_total_flops()


def weighted_layers(model) -> list:
    """Module paths of the graph's weighted layers (convolutions and linear layers), in the order they run."""
    return [node["module"] for node in model.graph["nodes"]
            if node["op"] in ("aten.conv2d.default", "aten.linear.default")]


def activation_adds(model) -> int:
    """Additions of two computed tensors in the graph: each is a shortcut joining a main path (batch norm's
    counter update adds a number to a buffer, and is not one)."""
    weights = set(model._state)  # graph inputs holding parameters, buffers and constants
    found = 0
    for node in model.graph["nodes"]:
        if node["op"] in ("aten.add.Tensor", "aten.add_.Tensor"):
            args = bind(node)
            refs = [a for a in (args.get("self"), args.get("other")) if isinstance(a, dict) and "ref" in a]
            found += len(refs) == 2 and not any(r["ref"] in weights for r in refs)
    return found


def _tensors(model) -> dict:
    return {**dict(model.named_parameters()), **dict(model.named_buffers())}


def _target(model, ref):
    """The weight name a graph argument refers to, or None (not a weight, or no argument)."""
    return model._state.get(ref["ref"]) if isinstance(ref, dict) and isinstance(ref.get("ref"), str) else None


def _stride(args) -> tuple:
    stride = args.get("stride", [1, 1])
    return tuple(stride) if isinstance(stride, list) else (stride, stride)


def _picked(model, pick):
    """("conv", node, args) for each convolution `pick(path, weight shape, stride)` selects, and ("bn", node, args)
    for each batch norm that reads one of them, in graph order: a block's main path, or its projection."""
    state, convs = _tensors(model), set()
    for node in model.graph["nodes"]:
        args = bind(node)
        if node["op"] == "aten.conv2d.default":
            target = _target(model, args["weight"])
            if target in state and pick(node["module"], tuple(state[target].shape), _stride(args)):
                convs.add(node["name"])
                yield "conv", node, args
        elif node["op"] == "aten.batch_norm.default" and args["input"].get("ref") in convs:
            yield "bn", node, args


def silenced(model, main):
    """A copy of `model` (eval mode) whose main path computes zero: each convolution that `main(path, weight
    shape, stride)` picks gets zero weights and bias, and each batch norm that reads one a zero scale, shift and
    running mean. What the block still outputs is what its shortcut carries: the residual test, by behaviour."""
    model = copy.deepcopy(model).eval()
    state = _tensors(model)
    with torch.no_grad():
        for kind, _, args in list(_picked(model, main)):
            for key in ("weight", "bias") + (("running_mean",) if kind == "bn" else ()):
                target = _target(model, args.get(key))
                if target in state:
                    state[target].zero_()
    return model


def main_path_parameters(model, main) -> int:
    """Parameters of a block's main path: the convolutions `main(path, weight shape, stride)` picks and the batch
    norms that read them (the rest of the block's parameters are its shortcut's)."""
    params = dict(model.named_parameters())
    targets = {_target(model, args.get(key)) for _, _, args in _picked(model, main) for key in ("weight", "bias")}
    return sum(params[t].numel() for t in targets if t in params)


def projection(model, pick):
    """The projection shortcut of a block, read off its graph: (path, weight shape, stride, fn) of the one
    convolution `pick(path, weight shape, stride)` selects, with fn(x) = its batch norm (eval mode) of that
    convolution of x, computed here from the block's own weights; None when no such convolution is followed by a
    batch norm."""
    state, convs = _tensors(model), {}
    for kind, node, args in _picked(model, pick):
        if kind == "conv":
            convs[node["name"]] = (node["module"], args)
            continue
        path, conv = convs[args["input"]["ref"]]
        weight, bias = state[_target(model, conv["weight"])], state.get(_target(model, conv.get("bias")))
        bn = {k: state.get(_target(model, args.get(k))) for k in ("weight", "bias", "running_mean", "running_var")}

        def fn(x, conv=conv, weight=weight, bias=bias, bn=bn, eps=args["eps"]):
            y = F.conv2d(x, weight, bias, _stride(conv), conv.get("padding", 0), conv.get("dilation", 1),
                         conv.get("groups", 1))
            return F.batch_norm(y, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"], False, 0.0, eps)
        return path, tuple(weight.shape), _stride(conv), fn
    return None


def shortcut_only(model, x, main):
    """The model's output on `x` with its main path silenced (see `silenced`)."""
    with torch.no_grad():
        return silenced(model, main).run(x)[0]


# ---- optimizers: described by the child as plain data, built and stepped here (autograder.optimizers) ----

NUMERIC_ONLY = {"foreach", "fused", "differentiable", "capturable"}  # how torch computes a step, not what


def optimizer_steps(described, shapes, steps=5, seed=0) -> list:
    """The grader's own tensors of `shapes` after `steps` steps of the optimizer `described` (built here from
    torch.optim) on a fixed problem: each tensor pulled towards a random target, so momentum, weight decay,
    Adam's moments and the learning rate all leave their mark."""
    generator = torch.Generator().manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(*shape, generator=generator)) for shape in shapes]
    targets = [torch.randn(*shape, generator=generator) for shape in shapes]
    optimizer = described.build(params)
    for _ in range(steps):
        optimizer.zero_grad()
        sum(((p - t) ** 2).sum() for p, t in zip(params, targets)).backward()
        optimizer.step()
    return [p.detach() for p in params]


def option_differences(got, want) -> str:
    """What the optimizer `got` sets otherwise than `want` (class, number of groups, options of each group that
    change a step), as `momentum 0.9 (expected 0.95)`; empty when nothing differs."""
    if got.name != want.name:
        return f"torch.optim.{got.name} (expected torch.optim.{want.name})"
    if len(got.groups) != len(want.groups):
        return f"{len(got.groups)} parameter groups (expected {len(want.groups)})"
    found = []
    for (_, mine), (_, theirs) in zip(got.groups, want.groups):
        found += [f"{key} {mine.get(key)!r} (expected {theirs.get(key)!r})" for key in sorted(set(mine) | set(theirs))
                  if key not in NUMERIC_ONLY and mine.get(key) != theirs.get(key)]
    return ", ".join(dict.fromkeys(found))


# ---- the short training run: the same three checks in every assignment ----

TRAINING_PART = ["training_gradient_reaches_every_layer", "training_loss_falls", "training_keeps_up"]  # the
# names a checks file gives training_checks' three checks, as its PARTS table lists them
FIT_FLOOR = 0.01  # a loss on one fixed batch this low is fitted, whatever the reference reached


def training_checks(label, input_side, accuracy_fraction=0.8, fit_factor=5, points=(5, 5, 5)):
    """The training run's checks for the network `label`, as three pytest checks to name in a checks file:
    every parameter gets a gradient; the loss falls; the network keeps up with the reference under the same budget,
    device and data: held-out accuracy reaches `accuracy_fraction` of the reference's, or, where the budget is one
    fixed batch, the lowest loss on it is at most `fit_factor` times the reference's (a plain stack fits the batch
    steps behind the residual net, its loss still over ten times as high). `input_side`: the module path prefix of the
    network's first layers (no gradient there means nothing but what follows a cut can learn)."""

    @pytest.mark.points(points[0])
    def gradient(submission):
        """Training: every parameter of the network gets a gradient from the loss"""
        gaps = submission.training()["gradient_gaps"]
        expect(not gaps, label, "a gradient for every parameter", f"none for {len(gaps)} parameter(s), e.g. "
               f"{', '.join(gaps[:3])}", "nothing between the input and the output may be detached (.detach(), "
               ".data, torch.no_grad) or the network cannot learn")

    def learns(submission):
        run = submission.training()
        cut = [name for name in run["gradient_gaps"] if name.startswith(input_side)]
        if cut:
            raise CheckFailed(label, "a network whose features learn",
                              f"no gradient reaching {input_side.rstrip('.')} ({', '.join(cut[:2])}, ...)",
                              "see the gradient check")
        return run, submission.reference_training

    @pytest.mark.points(points[1])
    def loss_falls(submission):
        """Training: the loss falls over a short run (fixed seeds, budget and data)"""
        run, ref = learns(submission)
        expect(run["last_loss"] < 0.9 * run["first_loss"], label, "a falling training loss",
               f"{run['first_loss']:.3f} -> {run['last_loss']:.3f} (the reference: {ref['first_loss']:.3f} -> "
               f"{ref['last_loss']:.3f})", "the shape checks locate what differs from the assignment's network")
        submission.note(f"loss {run['first_loss']:.3f} -> {run['last_loss']:.3f} on {run['data']}")

    @pytest.mark.points(points[2])
    def keeps_up(submission):
        run, ref = learns(submission)
        if "fit" in ref:
            want, steps = max(fit_factor * ref["fit"], FIT_FLOOR), run["budget"]["steps"]
            expect(run["fit"] <= want, label, f"a loss of at most {want:.3f} on one fixed batch within {steps} "
                   f"steps ({fit_factor:g}x the reference's lowest, {ref['fit']:.3f})", f"{run['fit']:.3f}",
                   "a network that fits the batch steps behind the reference is usually missing its shortcuts "
                   "(a plain stack) or has a wrong stride or width: see the other checks")
        else:
            want = accuracy_fraction * ref["accuracy"]
            expect(run["accuracy"] >= want, label, f"held-out accuracy of at least {want:.0%} "
                   f"({accuracy_fraction:.0%} of the reference's {ref['accuracy']:.0%})", f"{run['accuracy']:.0%}",
                   "a network that trains but lags usually has a wrong stride or width: see the shape checks")
        submission.note(f"{outcome(run)} (reference: {outcome(ref)}) on {run['data']}")

    keeps_up.__doc__ = (f"Training: keeps up with the reference under the same budget (held-out accuracy at least "
                        f"{accuracy_fraction:.0%} of its; on one fixed batch, a loss at most {fit_factor:g}x its)")
    return gradient, loss_falls, keeps_up

