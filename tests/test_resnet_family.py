"""The fourth assignment, the ResNet family: each sample gets its exact score and exactly the failed checks its bug
explains; the grader counts FLOPs itself on the rebuilt graph; the deep builders are judged by the structure they
list, so a builder whose name lies is caught; the training run reads MNIST-format digits."""
import json

import pytest
import torch
from safetensors.torch import save
from torch.utils.flop_counter import FlopCounterMode

from autograder import cli, export, rebuild
from autograder.assignments import ASSIGNMENTS
from autograder.grade import Checklist
from autograder.probes import flops
from tests.helpers import (assert_feedback_hides, assert_graded, demo_results, import_file, long_lines, messages,
                           state)

ASSIGNMENT = ASSIGNMENTS["resnet_family"]
BLOCKS = {"block_output_shapes", "basic_block_layers", "bottleneck_layers", "identity_shortcut", "projection",
          "block_residual"}
RESNET = {"stem", "stages", "flops", "num_classes"}
BUILDERS = {"parameters", "in_channels", "structure_basic", "structure_bottleneck"}
TRAINING = {"training_gradient_reaches_every_layer", "training_loss_falls", "training_keeps_up"}
ALL = BLOCKS | RESNET | BUILDERS | TRAINING

EXPECTED = {  # sample: (score out of 100, the checks it fails)
    "reference": (100, set()),
    "reference_notebook": (100, set()),
    "stride_on_first_1x1": (100, set()),  # the paper's ResNet-50: its FLOPs are the paper's, and accepted
    "partial_helpers": (100, set()),  # conv3x3 = partial(Conv2dAuto, ...) at module level is kept by the loader
    "release": (0, ALL),
    "release_notebook": (0, ALL),
    # a Bottleneck as wide out as in: wrong shapes, widths, projections, FLOPs, fc and counts; the in_channels
    # difference and the structure (block and kernel counts) still right
    "expansion_1_in_bottleneck": (45, BLOCKS - {"basic_block_layers"} | {"stages", "flops", "num_classes",
                                                                       "parameters"}),
    "fc_512_for_bottleneck": (80, {"flops", "num_classes", "parameters"}),  # the stages still run part by part
    "in_channels_ignored": (75, {"stem", "in_channels"} | TRAINING),  # the digits net cannot take one channel
    "no_maxpool": (75, {"stem", "stages", "flops"}),
    "no_stride_in_make_layer": (80, {"stages", "flops"}),
    # Bottleneck(64, 64) cannot add: layer1 of ResNet-50 breaks, so its stages and FLOPs fail
    "projection_on_stride_only": (60, {"block_output_shapes", "identity_shortcut", "projection", "stages", "flops",
                                       "parameters"}),
    "resnet101_layers_of_50": (85, {"parameters", "structure_bottleneck"}),
    "resnet152_layers_mistyped": (85, {"parameters", "structure_bottleneck"}),
    # the lie is in the structure, and everything built from resnet50 shows it
    "resnet50_from_basic_blocks": (55, {"identity_shortcut", "stages", "flops", "num_classes", "parameters",
                                        "structure_bottleneck"}),
    "resnet50_from_basic_blocks_notebook": (55, {"identity_shortcut", "stages", "flops", "num_classes", "parameters",
                                                 "structure_bottleneck"}),
}


@pytest.fixture(scope="module")
def graded(demo, tmp_path_factory):
    return demo_results(demo, ASSIGNMENT.name, tmp_path_factory)


def test_every_sample_is_shipped_and_expected():
    shipped = {p.name.rsplit(".", 1)[0] for p in ASSIGNMENT.samples_dir.iterdir()}
    assert shipped == set(EXPECTED)
    bugs = [name for name, (what, _) in ASSIGNMENT.samples.items() if not what.startswith("honest variant")]
    assert len(bugs) >= 8


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_sample_gets_its_exact_score_and_failures(graded, student):
    assert_graded(graded, student, ALL, *EXPECTED[student], max_score=100)


def test_feedback_names_module_expected_got_and_next_step(graded):
    assert messages(graded, "reference")["bottleneck_layers"] == (
        "Bottleneck(256, 128, 2): the stride is on the 3x3, as torchvision does")
    assert messages(graded, "stride_on_first_1x1")["bottleneck_layers"] == (
        "Bottleneck(256, 128, 2): the stride is on the first 1x1, as the paper does")
    lie = messages(graded, "resnet50_from_basic_blocks")["structure_bottleneck"]
    assert lie.startswith("resnet50(): expected Bottlenecks, layers [3, 4, 6, 3]: layer1 3 blocks of 1x1, 3x3, 1x1")
    assert "got layer1 3 blocks of 3x3, 3x3" in lie and "Next step: resnet50 is ResNet(Bottleneck" in lie
    assert "layer3 6 blocks of 1x1, 3x3, 1x1" in messages(graded, "resnet101_layers_of_50")["structure_bottleneck"]
    assert messages(graded, "no_maxpool")["flops"].startswith(
        "resnet18() at 224 x 224: expected 1.81 GMACs (3,627,132,928 FLOPs), got 6.90 GMACs")
    assert messages(graded, "expansion_1_in_bottleneck")["num_classes"].startswith(
        "resnet50(num_classes=7): expected a last linear layer 2048 -> 7, got 512 -> 7")
    assert "resnet18: 0 fewer" in messages(graded, "in_channels_ignored")["in_channels"]
    assert "could not run on an input of shape (4, 1, 28, 28)" in messages(graded, "in_channels_ignored")["stem"]
    assert "Bottleneck(64, 64) could not run" in messages(graded, "projection_on_stride_only")["block_output_shapes"]
    assert "held-out accuracy" in messages(graded, "reference")["training_keeps_up"]
    assert "MNIST-format set of real handwritten digits" in messages(graded, "reference")["training_keeps_up"]


def test_feedback_shows_neither_check_source_nor_solution_code(graded):
    solution = {line.strip() for line in ASSIGNMENT.reference_module.read_text().splitlines()
                if "return ResNet(" in line or "self.fc = nn.Linear(" in line}
    assert_feedback_hides(graded, long_lines(ASSIGNMENT.checks), solution)


def test_the_training_run_reads_digits_with_the_assignments_budget(graded):
    checklist = Checklist.of(ASSIGNMENT)
    assert checklist.training_data == "mnist"
    budget = checklist.budget("cpu")
    assert (budget.classes, budget.steps, budget.batch) == ((3, 5, 8), 40, 16)
    key = state(graded, "reference")["key"]
    assert key["budget"]["classes"] == [3, 5, 8] and "handwritten digits" in key["data"]


# ---- the grader's own FLOP count ----

def test_flops_are_counted_on_the_rebuilt_graph_as_torch_counts_the_module():
    net = import_file(ASSIGNMENT.reference_module).resnet18().eval()
    graph, tensors = export.export_model(net, [torch.randn(2, 3, 32, 32)], train=False, dynamic=(0, 2, 3))
    model = rebuild.from_bytes(json.dumps(graph).encode(), save(tensors), [[2, 3, 32, 32]], (1,),
                               [[[1, 3, 224, 224]]])
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.randn(1, 3, 224, 224))
    assert flops(model, 1, 3, 224, 224) == counter.get_total_flops()
    assert round(counter.get_total_flops() / 2e9, 2) == 1.81  # facts.md: 1.81 GMACs for ResNet-18 at 224 x 224
