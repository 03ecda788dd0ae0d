"""The second assignment, the paper's CIFAR ResNets: each sample gets its exact score and exactly the failed checks
its bug explains; code from the wild is graded for what it defines; the shortcuts' ops rebuild."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save

from autograder import cli, export, grade, rebuild
from autograder.assignments import ASSIGNMENTS, ROOT, SOLUTIONS
from autograder.grade import Checklist
from autograder.train import DataError
from autograder.probes import activation_adds, main_path_parameters, projection, shortcut_only
from tests.helpers import (assert_feedback_hides, assert_graded, demo_results, exported, import_file, long_lines,
                           messages, state)

ASSIGNMENT = ASSIGNMENTS["resnet_paper_cifar10"]
BLOCK = {"block_output_shapes", "block_layers", "block_stride", "block_residual", "option_a_shortcut",
         "option_b_projection"}
PLAIN = {"plain_block", "plain_net"}
NET = {"stem", "stages", "output", "num_classes", "default_builder", "parameters_option_a", "parameters_option_b",
       "depth"}
TRAINING = {"training_gradient_reaches_every_layer", "training_loss_falls", "training_keeps_up"}
ALL = BLOCK | PLAIN | NET | TRAINING
PARAMETERS = {"parameters_option_a", "parameters_option_b"}

EXPECTED = {  # sample: (score out of 100, the checks it fails)
    "reference": (100, set()),
    "reference_notebook": (100, set()),
    "cat_zeros": (100, set()),  # option A's zeros may follow the input's channels
    "capitalised_builders": (100, set()),  # ResNet20 is graded as resnet20, and the feedback says so
    "release": (0, ALL),
    "release_notebook": (0, ALL),
    "option_b_default": (95, {"default_builder"}),  # seed 003's choice: only the default differs
    "num_classes_ignored": (95, {"num_classes"}),
    "relu_before_add": (95, {"block_residual"}),
    "relu_before_add_notebook": (95, {"block_residual"}),
    "stride_on_second_conv": (95, {"block_stride"}),  # the shapes come out right: only the placement is wrong
    "stage3_no_downsample": (90, {"stages"}),
    "no_bn2": (85, {"block_layers"} | PARAMETERS),
    # option A alone earns everything that does not need B: the main path is read off option A's block
    "option_b_unwritten": (85, {"block_output_shapes", "option_b_projection", "parameters_option_b"}),
    "projection_everywhere": (85, {"block_residual"} | PARAMETERS),
    "resnet14": (75, {"stages", "depth"} | PARAMETERS),
    # the pooling is in forward: the net cannot reach its classifier, and neither can the plain net that shares it
    "avgpool_kernel_4": (75, {"output", "plain_net"} | TRAINING),
    # the strided blocks cannot add: nothing with option A runs, the stem, the depth and the counts still earn points
    "pad_wrong_dim": (60, {"block_output_shapes", "option_a_shortcut", "stages", "output"} | TRAINING),
    # kuangliu's file, as seed 003 submitted it: option B always, no PlainBlock, ResNet20() without arguments
    "seed003_kuangliu": (35, BLOCK | PLAIN | {"num_classes", "default_builder", "depth"} | PARAMETERS),
}


@pytest.fixture(scope="module")
def graded(demo, tmp_path_factory):
    """The demo's samples, and a public implementation graded into the same folder."""
    out = demo_results(demo, ASSIGNMENT.name, tmp_path_factory)
    assert cli.main(["--assignment", ASSIGNMENT.name, "--out", str(out),
                     str(ROOT / "tests" / "wild" / "seed003_kuangliu.py")]) == 0
    return out


def test_every_sample_is_shipped_and_expected():
    shipped = {p.name.rsplit(".", 1)[0] for p in ASSIGNMENT.samples_dir.iterdir()}
    assert shipped | {"seed003_kuangliu"} == set(EXPECTED)
    assert len(ASSIGNMENT.samples) >= 10  # at least eight realistic bugs beside the honest variants


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_sample_gets_its_exact_score_and_failures(graded, student):
    assert_graded(graded, student, ALL, *EXPECTED[student], max_score=100)


def test_feedback_names_module_expected_got_and_next_step(graded):
    assert messages(graded, "option_b_default")["default_builder"] == (
        'resnet20(): expected 269,722 parameters, as resnet20(num_classes=10, option="A") has, got 272,474 (as '
        'option B has). Next step: the defaults are num_classes=10 and option="A"')
    assert messages(graded, "stride_on_second_conv")["block_stride"] == (
        "BasicBlock(16, 32, 2, option='B'): expected strides [2, 1] on conv1, conv2, got [1, 2]. Next step: pass "
        "the stride to conv1 only; conv2 always has stride 1")
    assert "x itself, without the ReLU after the addition" in messages(graded, "relu_before_add")["block_residual"]
    assert "288 parameters outside the main path" in messages(graded, "projection_everywhere")["block_residual"]
    assert messages(graded, "resnet14")["stages"].startswith("layer1: expected 3 blocks, got 2")
    assert messages(graded, "num_classes_ignored")["num_classes"] == (
        "resnet20(num_classes=7): expected a last linear layer with 7 outputs, got 10. Next step: pass num_classes "
        "on to ResNet, and use it in nn.Linear(64, num_classes)")
    assert "could not run on an input of shape (4, 16, 8, 8)" in messages(graded, "pad_wrong_dim")[
        "block_output_shapes"]
    feedback = (graded / "feedback" / "capitalised_builders.md").read_text()
    assert "Graded by other names: `ResNet20` as the assignment's `resnet20`" in feedback


def test_code_from_the_wild_gets_notes_for_what_it_could_not_import_or_call(graded):
    result = state(graded, "seed003_kuangliu")
    assert any("No module named 'wandb'" in n for n in result["notes"])
    assert any("No module named 'utils'" in n for n in result["notes"])
    skipped = next(n for n in result["notes"] if "not run when grading" in n)
    assert "line 15: checkpoint = torch.load('./checkpoint/ckpt.pth')" in skipped and "and 5 more" in skipped
    assert "`ResNet20` as the assignment's `resnet20`" in result["picked"]
    said = messages(graded, "seed003_kuangliu")
    assert "does not take the keyword arguments the assignment's resnet20 takes" in said["num_classes"]
    assert said["plain_net"].startswith("missing name: the submission defines no plain20 (nor Plain20)")


def test_feedback_shows_neither_check_source_nor_solution_code(graded):
    solution = {line.strip() for line in ASSIGNMENT.reference_module.read_text().splitlines()
                if "LambdaLayer(lambda" in line or "ResNet(BasicBlock, [" in line}
    assert_feedback_hides(graded, long_lines(ASSIGNMENT.checks), solution)


def test_a_deeply_nested_child_file_is_unreadable_not_an_internal_error(tmp_path):
    nested = "[" * 1500 + "]" * 1500  # within the size caps, beyond the JSON parser's recursion limit
    for name in ("net.built.json", "net.params.json", "net.error.json"):
        (tmp_path / name).write_text(nested)
    spec = next(s for s in Checklist.of(ASSIGNMENT).exports if s["name"] == "net")
    assert grade._built_by(tmp_path, spec) is None
    assert grade._parameter_shapes(tmp_path, "net") is None
    assert "unreadable" in grade._error(tmp_path, "net", spec, [], ()).message


def test_the_grader_locks_away_every_assignment_and_the_tests_not_only_the_one_graded(monkeypatch, tmp_path):
    protected = []
    monkeypatch.setattr(cli.sandbox, "protect", protected.extend)
    monkeypatch.setattr(cli, "prepare", lambda *a, **k: (_ for _ in ()).throw(DataError("stop here")))
    with pytest.raises(SystemExit):
        cli.main(["--assignment", ASSIGNMENT.name, "--out", str(tmp_path / "out"), str(tmp_path)])
    assert SOLUTIONS in protected and ROOT / "tests" in protected


# ---- what the checks read off a rebuilt graph ----

@pytest.fixture(scope="module")
def reference():
    return import_file(ASSIGNMENT.reference_module)


def rebuilt(model, shape, tmp_path):
    return exported(model, shape, tmp_path).eval()


class CatZeros(nn.Module):
    """Option A's three spellings in the wild: F.pad, a cat with zeros_like / new_zeros / torch.zeros."""

    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x):
        y = x[:, :, ::2, ::2]
        if self.how == "pad":
            return F.pad(y, (0, 0, 0, 0, 4, 4))
        if self.how == "zeros_like":
            return torch.cat([y, torch.zeros_like(y)], 1)
        if self.how == "new_zeros":
            return torch.cat([y, y.new_zeros(y.shape)], 1)
        z = torch.zeros(y.size(0), 4, y.size(2), y.size(3), dtype=x.dtype, device=x.device)
        return torch.cat([z, y, z], 1)


@pytest.mark.parametrize("how", ["pad", "zeros_like", "new_zeros", "zeros"])
def test_option_a_spellings_rebuild_and_compute_the_same(how, tmp_path):
    model = CatZeros(how)
    again = rebuilt(model, (2, 8, 8, 8), tmp_path)
    x = torch.randn(3, 8, 8, 8)
    assert torch.equal(again(x), model(x))  # another batch size too: the zeros follow the input


def test_a_crafted_zeros_of_absurd_size_is_refused_before_it_runs(tmp_path):
    graph, tensors = export.export_model(CatZeros("zeros"), [torch.randn(2, 8, 8, 8)])
    node = next(n for n in graph["nodes"] if n["op"] == "aten.zeros.default")
    node["args"][0] = [1 << 20, 1 << 20, 1, 1]
    with pytest.raises(rebuild.RebuildError, match="limit"):
        rebuild.from_bytes(json.dumps(graph).encode(), save(tensors), [[2, 8, 8, 8]])


def test_silencing_the_main_path_leaves_the_shortcut(reference, tmp_path):
    x = torch.randn(2, 16, 8, 8)
    is_3x3 = lambda path, shape, stride: shape[2:] == (3, 3)  # noqa: E731
    identity = rebuilt(reference.BasicBlock(16, 16), (2, 16, 8, 8), tmp_path)
    assert torch.allclose(shortcut_only(identity, x, is_3x3), F.relu(x))
    plain = rebuilt(reference.PlainBlock(16, 16), (2, 16, 8, 8), tmp_path)
    assert not shortcut_only(plain, x, is_3x3).abs().sum()
    block_b = rebuilt(reference.BasicBlock(16, 32, 2, option="B"), (2, 16, 8, 8), tmp_path)
    path, shape, stride, fn = projection(block_b, lambda p, s, st: s[2:] == (1, 1))
    assert (shape, stride) == ((32, 16, 1, 1), (2, 2))
    assert torch.allclose(shortcut_only(block_b, x, is_3x3), F.relu(fn(x)), atol=1e-6)
    assert main_path_parameters(block_b, is_3x3) == 16 * 32 * 9 + 32 * 32 * 9 + 4 * 32


def test_shortcut_additions_are_counted_and_batch_norm_updates_are_not(reference, tmp_path):
    assert activation_adds(rebuilt(reference.resnet20(), (2, 3, 32, 32), tmp_path)) == 9
    assert activation_adds(rebuilt(reference.plain20(), (2, 3, 32, 32), tmp_path)) == 0

