"""A module rebuilt from JSON + safetensors behaves like the original, trains, and refuses ops off the allowlist."""
import copy
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from autograder import export, rebuild
from tests.helpers import import_file


@pytest.fixture(scope="module")
def reference(assignment):
    return import_file(assignment.reference_module)


def exported(model, shape, tmp_path, train=True, name="m"):
    """Export `model`, write it as the child does, and rebuild it from those files alone."""
    torch.manual_seed(0)
    graph, tensors = export.export_model(model, [torch.randn(*shape)], train=train)
    export.save(name, graph, tensors, tmp_path)
    return rebuild.load(tmp_path, name)


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
