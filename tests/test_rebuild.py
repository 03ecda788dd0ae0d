"""A module rebuilt from JSON + safetensors behaves like the original, trains, and refuses ops off the allowlist."""
import copy
import json
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save

from autograder import export, rebuild
from autograder.assignments import ASSIGNMENTS
from tests.helpers import exported, import_file


@pytest.fixture(scope="module")
def reference(assignment):
    return import_file(assignment.reference_module)


def test_rebuilt_network_matches_the_original_exactly_in_eval_mode(reference, tmp_path):
    torch.manual_seed(0)
    original = reference.ResNet50_layer4(num_classes=10)
    rebuilt = exported(original, (4, 3, 32, 32), tmp_path)
    assert set(rebuilt.state_dict()) == set(original.state_dict())
    assert sum(p.numel() for p in rebuilt.parameters()) == 14_750_730
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), original.eval()(x))


@pytest.mark.parametrize("exported_in_train_mode", [True, False], ids=["exported-train", "exported-eval"])
def test_rebuilt_block_follows_its_own_train_mode(reference, tmp_path, exported_in_train_mode):
    torch.manual_seed(0)
    original = reference.ResidualBlock(64, 64, 256, downsample=True)
    rebuilt = exported(copy.deepcopy(original), (4, 64, 8, 8), tmp_path, train=exported_in_train_mode)
    x = torch.randn(4, 64, 8, 8)
    assert torch.allclose(rebuilt.train()(x), original.train()(x), atol=1e-6)  # batch statistics, not running
    for key, value in original.state_dict().items():  # running statistics moved the same way
        if key.endswith("num_batches_tracked"):
            # the increment is in the graph only when exported in train mode (the grader always does that);
            # it matters only to BatchNorm with momentum=None
            assert rebuilt.state_dict()[key].item() == (1 if exported_in_train_mode else 0), key
        else:
            assert torch.allclose(rebuilt.state_dict()[key], value, atol=1e-6), key
    with torch.no_grad():
        before = copy.deepcopy(rebuilt.state_dict())
        assert torch.allclose(rebuilt.eval()(x), original.eval()(x), atol=1e-5)
        assert all(torch.equal(before[k], v) for k, v in rebuilt.state_dict().items())  # eval changes nothing


def test_rebuilt_network_trains(reference, tmp_path):
    torch.manual_seed(0)
    rebuilt = exported(reference.ResNet50_layer4(num_classes=10), (8, 3, 32, 32), tmp_path).train()
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    optimizer = torch.optim.Adam(rebuilt.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(rebuilt(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_a_detached_output_reaches_the_rebuilt_module(tmp_path):
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.conv(x).mean(dim=(2, 3)).detach())

    rebuilt = exported(Detached(), (2, 3, 8, 8), tmp_path)
    rebuilt(torch.randn(2, 3, 8, 8)).sum().backward()
    assert rebuilt.conv.weight.grad is None and rebuilt.fc.weight.grad is not None


def test_an_op_off_the_allowlist_is_refused_by_name(tmp_path):
    class Wavy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.sin(x))

    with pytest.raises(rebuild.UnsupportedOps, match=r"aten\.sin\.default"):
        exported(Wavy(), (2, 4), tmp_path)


def test_the_files_are_plain_data(reference, tmp_path):
    exported(reference.ResidualBlock(8, 4, 16), (2, 8, 4, 4), tmp_path, name="block")
    graph = json.loads((tmp_path / "block.json").read_text())
    ops = {node["op"] for node in graph["nodes"]}
    assert ops == {"aten.conv2d.default", "aten.batch_norm.default", "aten.relu_.default", "aten.add.Tensor",
                   "aten.add_.Tensor"}
    convs = [n for n in graph["nodes"] if n["op"] == "aten.conv2d.default"]
    assert [n["module"] for n in convs] == ["layer.0.0", "layer.1.0", "layer.2.0", "make_equal_channel.0"]
    assert convs[0]["shape"] == [None, 4, 4, 4]  # the batch dimension stays dynamic
    assert set(load_file(str(tmp_path / "block.safetensors"))) >= {"layer.0.0.weight", "make_equal_channel.1.running_mean"}


@pytest.mark.parametrize("graph, message", [
    ({"format": "something else"}, "not in the grader's format"),
    ({"format": rebuild.FORMAT, "inputs": [{"name": "p", "kind": "parameter", "target": "w"}], "nodes": [],
      "output": None}, "lack w"),
])
def test_malformed_exports_are_refused(graph, message):
    with pytest.raises(rebuild.RebuildError, match=message):
        rebuild.Rebuilt(graph, {})


def test_one_export_serves_every_batch_size(reference, tmp_path):
    rebuilt = exported(reference.ResNet50_layer4(num_classes=10), (4, 3, 32, 32), tmp_path).eval()
    with torch.no_grad():
        assert [tuple(rebuilt(torch.randn(b, 3, 32, 32)).shape) for b in (1, 3, 9)] == [(1, 10), (3, 10), (9, 10)]


def test_a_graph_that_would_exhaust_memory_is_refused_before_it_runs(tmp_path):
    class Bomb(nn.Module):
        def forward(self, x):
            return F.pad(x, (0, 20000, 0, 20000))

    torch.manual_seed(0)
    graph, tensors = export.export_model(Bomb(), [torch.randn(2, 3, 4, 4)])
    export.save("bomb", graph, tensors, tmp_path)
    with pytest.raises(rebuild.RebuildError, match="limit"):
        rebuild.from_bytes((tmp_path / "bomb.json").read_bytes(), (tmp_path / "bomb.safetensors").read_bytes(),
                           [[2, 3, 4, 4]])


# ---- hostile graphs: everything in the JSON comes from the sandbox ----

EXPORTS = import_file(ASSIGNMENTS["resnet50_cifar10"].checks).EXPORTS


@pytest.mark.parametrize("spec", EXPORTS, ids=[e["name"] for e in EXPORTS])
def test_the_reference_exports_pass_the_checks_and_run_at_every_batch_size(reference, spec):
    torch.manual_seed(0)
    model = getattr(reference, spec["build"])(*spec.get("args", []), **spec.get("kwargs", {}))
    graph, tensors = export.export_model(model, [torch.randn(*s) for s in spec["inputs"]])
    rebuild.check_graph(graph, tensors)
    rebuilt = rebuild.from_bytes(json.dumps(graph).encode(), save(tensors), spec["inputs"],
                                 batches=(1, 3, 32, 64, 200)).eval()
    with torch.no_grad():
        for batch in (1, 3, 32):
            x = torch.randn(batch, *spec["inputs"][0][1:])
            assert rebuilt(x).shape[0] == batch
            assert torch.allclose(rebuilt(x), model.eval()(x), atol=1e-5)


def test_every_allowlisted_op_has_a_signature_of_known_types():
    for name, op in rebuild.OPS.items():
        assert op.params and all(p.type.removesuffix("?") in rebuild.TYPES for p in op.params), name
        assert op.returns in {"Tensor", "SymInt"}, name


def node(name, op, *args, **kwargs):
    return {"name": name, "op": op, "args": list(args), "kwargs": kwargs, "shape": None, "module": "",
            "module_type": ""}


def ref(name):
    return {"ref": name}


def graph(*nodes, output="out"):
    """A hand-made graph over one input `x` and one weight `w` (fc.weight, 10 x 3)."""
    return {"format": rebuild.FORMAT, "nodes": list(nodes), "output": [ref(output)],
            "inputs": [{"name": "x", "kind": "input", "target": None},
                       {"name": "w", "kind": "parameter", "target": "fc.weight"}]}


WEIGHTS = {"fc.weight": torch.zeros(10, 3)}
SIZE = node("n", "aten.sym_size.int", ref("x"), 0)


def squarings(count):
    nodes, last = [SIZE], "n"
    for i in range(count):
        nodes.append(node(f"sq{i}", "_operator.mul", ref(last), ref(last)))
        last = f"sq{i}"
    return nodes + [node("out", "aten.view.default", ref("x"), [ref(last), -1])]


def relus(count):
    nodes = [node("r0", "aten.relu.default", ref("x"))]
    nodes += [node(f"r{i}", "aten.relu.default", ref(f"r{i - 1}")) for i in range(1, count)]
    return nodes + [node("out", "aten.detach.default", ref(f"r{count - 1}"))]


def run_hostile(nodes, message, input_shape=(4, 3), batches=(), weights=WEIGHTS, output="out"):
    """`nodes` as a graph through from_bytes, which must refuse it quickly with `message`."""
    harmless = graph(node("out", "aten.relu.default", ref("x")))
    rebuild.from_bytes(json.dumps(harmless).encode(), save(weights), [[4, 3]])  # torch's first meta run: ~2 s
    started = time.monotonic()
    with pytest.raises(rebuild.RebuildError, match=message):
        rebuild.from_bytes(json.dumps(graph(*nodes, output=output)).encode(), save(weights), [list(input_shape)],
                           batches)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("nodes, message", [
    ([SIZE, node("out", "_operator.mul", ref("n"), "a" * 10_000_000)], r"argument 'b' must be an integer.*not 'aaa"),
    ([SIZE, node("out", "_operator.mul", ref("n"), [7] * 1_000_000)], "not a list of 1000000 item"),
    ([SIZE, node("out", "_operator.mul", ref("n"), 1 << 40)], "integer within"),
    (squarings(40), "computes a size beyond the grader's limit"),
    ([SIZE, node("z", "_operator.floordiv", ref("n"), 0), node("out", "aten.view.default", ref("x"), [ref("z")])],
     "divides a size by zero"),
    ([node("out", "aten.relu.default", ref("later")), node("later", "aten.relu.default", ref("x"))],
     "uses 'later' before the node that makes it"),
    ([node("out", "aten.relu.default", ref("nowhere"))], "'nowhere', which the graph does not define"),
    ([node("out", "aten.linear.default", "x", ref("w"))], "argument 'input' must be a tensor"),
    ([SIZE, node("out", "aten.linear.default", ref("n"), ref("w"))], "argument 'input' must be a tensor"),
    ([node("out", "aten.dropout.default", ref("x"), float("nan"), True)], "argument 'p' must be a finite number"),
    ([node("out", "aten.dropout.default", ref("x"), float("inf"), True)], "argument 'p' must be a finite number"),
    ([node("out", "aten.linear.default", ref("x"), ref("w"), evil=1)], "takes no argument named 'evil'"),
    ([node("out", "aten.linear.default", ref("x"), ref("w"), None, None)], "at most 3 positional"),
    ([node("out", "aten.linear.default", ref("x"))], "argument 'weight' is missing"),
    ([node("out", "aten.pad.default", ref("x"), [1, 1], "os.system")], "argument 'mode' must be one of"),
    ([node("out", "aten.mean.dim", ref("x"), [1], dtype={"dtype": "__class__"})], "argument 'dtype' must be a dtype"),
    ([node("out", "aten.max_pool2d.default", ref("x"), [1] * 9)], "argument 'kernel_size'"),
    ([node("out", "aten.relu.default", {"ref": "x", "more": 1})], "a reference must be"),
    # the dry run's own batch norm (torch's meta one is slow) refuses per-channel tensors that do not fit, as torch's
    ([node("out", "aten.batch_norm.default", ref("x"), ref("w"), None, None, None, False, 0.1, 1e-5, True)],
     r"does not run on its own example input \(RuntimeError: 'batch_norm: the per-channel tensors do not fit"),
    ([node("out", "aten.relu.default", ref("x")), node("out", "aten.relu.default", ref("x"))], "used twice"),
    ([node("out", "aten.relu.default", ref("x")) | {"shape": "big"}], "its shape must be"),
    ([node("out", "aten.relu.default", ref("x")) | {"module": "a." * 100}], "its module path must be"),
    ([node("out", "aten.relu.default", ref("x")) | {"name": ["x"]}], "node 0's name must be"),
    ([node("out", "aten.sym_size.int", ref("x"), 0)], "its output: it must be a tensor"),
    ([node(f"d{i}", "aten.detach.default", ref("x")) for i in range(rebuild.MAX_NODES + 1)], "at most 20,000 nodes"),
    # fine at the export's batch (4 x 3 x 2048 x 2048 = 50M elements), a 403M-element tensor at batch 32
    ([node("out", "aten.pad.default", ref("x"), [1024, 1024, 1024, 1024])], None),
    # 7 tensors of 2**26 elements: each under the per-tensor limit, together over the total
    (relus(7), None),
], ids=["huge-string", "huge-list", "huge-int", "40-squarings", "divide-by-zero", "forward-ref", "unknown-ref",
        "string-for-tensor", "size-for-tensor", "nan", "inf", "unknown-kwarg", "too-many-args", "missing-arg",
        "pad-mode", "dtype", "long-int-list", "bad-ref", "batch-norm-misfit", "duplicate-name", "bad-shape",
        "deep-module", "bad-name", "output-not-tensor", "too-many-nodes", "pad-at-batch-32", "total-memory"])
def test_hostile_graphs_are_refused_quickly(nodes, message):
    if message is not None:
        run_hostile(nodes, message)
    elif nodes[0]["op"] == "aten.pad.default":
        rebuild.from_bytes(json.dumps(graph(*nodes)).encode(), save(WEIGHTS), [[4, 3, 1, 1]])  # its own batch
        run_hostile(nodes, r"makes a tensor of shape \(32, 3, 2049, 2049\) at batch 32; the grader's limit is "
                           "134,217,728 elements", input_shape=(4, 3, 1, 1), batches=(1, 32, 200))
    else:
        run_hostile(nodes, "add up to more than the grader's limit of 402,653,184 elements",
                    input_shape=(4, 1 << 24))


def test_a_fixed_batch_fails_only_at_its_own_batch():
    fixed = [node("out", "aten.view.default", ref("x"), [4, 3])]
    rebuild.from_bytes(json.dumps(graph(*fixed)).encode(), save(WEIGHTS), [[4, 3]], batches=(1, 32, 200))
    run_hostile([node("out", "aten.view.default", ref("x"), [5, 3])], r"does not run on its own example input")


@pytest.mark.parametrize("graph_bytes, tensor_bytes", [
    (b"[" * 100_000, save({})), (json.dumps(graph(node("out", "aten.relu.default", ref("x")))).encode(), b"\xff" * 64),
], ids=["nested-json", "garbage-weights"])
def test_unreadable_files_are_refused(graph_bytes, tensor_bytes):
    with pytest.raises(rebuild.RebuildError, match="unreadable"):
        rebuild.from_bytes(graph_bytes, tensor_bytes, [[4, 3]])


@pytest.mark.parametrize("target", ["training", "run.weight", "fc.weight.x", "fc..weight", "__class__.w", "a\nb"])
def test_a_weight_name_that_is_not_a_plain_attribute_is_refused(target):
    spec = graph(node("out", "aten.relu.default", ref("x")))
    spec["inputs"] += [{"name": "p", "kind": "parameter", "target": target}]
    with pytest.raises(rebuild.RebuildError, match="weight"):
        rebuild.Rebuilt(spec, {**WEIGHTS, target: torch.zeros(1)})


def test_a_computed_convolution_weight_is_refused_when_read():
    conv = graph(node("v", "aten.view.default", ref("w"), [10, 3, 1, 1]),
                 node("out", "aten.conv2d.default", ref("x"), ref("v")))
    with pytest.raises(rebuild.RebuildError, match="computes its weight"):
        rebuild.Rebuilt(conv, WEIGHTS).convolutions()
