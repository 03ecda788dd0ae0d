"""The third assignment, ResNet-34 and the optimizer study: each sample gets its exact score and exactly the failed
checks its bug explains; make_optimizer crosses into the grading process only as a plain description, which is
validated like any other child output; a net graded at two input sizes is exported once."""
import json

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save

from autograder import cli, export, rebuild
from autograder.assignments import ASSIGNMENTS
from autograder.grade import Checklist
from autograder.optimizers import OptimizerError, described
from autograder.probes import option_differences, optimizer_steps
from autograder.train import BUDGETS
from tests.helpers import assert_feedback_hides, assert_graded, demo_results, long_lines, messages, state

ASSIGNMENT = ASSIGNMENTS["resnet34_optimizers"]
BLOCK = {"block_output_shapes", "block_layers", "identity_shortcut", "projection", "block_residual"}
NET = {"stem", "stages", "stages_128", "parameters", "output", "num_classes", "depth"}
OPTIMIZER = {"sgd", "adam", "sgd_m095", "lr_and_parameters"}
TRAINING = {"training_gradient_reaches_every_layer", "training_loss_falls", "training_keeps_up"}
ALL = BLOCK | NET | OPTIMIZER | TRAINING

EXPECTED = {  # sample: (score out of 100, the checks it fails)
    "reference": (100, set()),
    "reference_notebook": (100, set()),
    "shortcut_always_called": (100, set()),  # an empty nn.Sequential is an identity: no parameters, x added
    "optimizer_options_spelled_out": (100, set()),  # the defaults written out (and foreach) take the same steps
    "release": (0, ALL),
    "release_notebook": (0, ALL),
    "adam_for_sgd": (95, {"sgd"}),
    "momentum_09_for_m095": (95, {"sgd_m095"}),
    "lr_fixed": (95, {"lr_and_parameters"}),  # 0.01 is the notebook's lr: only another lr shows it is ignored
    "no_relu_after_add": (95, {"block_residual"}),
    "no_relu_after_add_notebook": (95, {"block_residual"}),
    "stride_on_second_conv": (95, {"block_layers"}),  # the shapes come out right: only the placement is wrong
    # BasicBlock(64, 128, 1) cannot add: ResNet-34 never builds one (its channels change with the stride)
    "projection_on_stride_only": (90, {"block_output_shapes", "projection"}),
    "projection_everywhere": (90, {"identity_shortcut", "parameters"}),
    "blocks_mistyped": (85, {"stages", "parameters"}),  # the stage outputs, and the depth, are still right
    # AvgPool2d(7) on a 1 x 1 (32 x 32 input) or 4 x 4 (128 x 128) map: nothing reaches fc; the stages still earn
    "avgpool_7": (70, {"stages_128", "output", "depth"} | TRAINING),
}


@pytest.fixture(scope="module")
def graded(demo, tmp_path_factory):
    return demo_results(demo, ASSIGNMENT.name, tmp_path_factory)


def test_every_sample_is_shipped_and_expected():
    shipped = {p.name.rsplit(".", 1)[0] for p in ASSIGNMENT.samples_dir.iterdir()}
    assert shipped == set(EXPECTED)
    bugs = [name for name, (what, _) in ASSIGNMENT.samples.items() if not what.startswith("honest variant")]
    assert len(bugs) >= 7


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_sample_gets_its_exact_score_and_failures(graded, student):
    assert_graded(graded, student, ALL, *EXPECTED[student], max_score=100)


def test_feedback_names_module_expected_got_and_next_step(graded):
    assert messages(graded, "momentum_09_for_m095")["sgd_m095"] == (
        "make_optimizer('sgd_m095', model.parameters(), 0.01): expected the steps the notebook's optimizer takes, "
        "got momentum 0.9 (expected 0.95). Next step: return torch.optim.SGD with momentum=0.95 and "
        "weight_decay=WEIGHT_DECAY")
    assert "got torch.optim.Adam (expected torch.optim.SGD)" in messages(graded, "adam_for_sgd")["sgd"]
    assert messages(graded, "lr_fixed")["lr_and_parameters"] == (
        "make_optimizer('sgd', model.parameters(), 0.1): expected lr 0.1, got 0.01. Next step: pass the lr "
        "argument on: lr=lr")
    assert "BasicBlock(64, 64): expected a shortcut without parameters, got 4,224 parameters" in messages(
        graded, "projection_everywhere")["identity_shortcut"]
    assert "BasicBlock(64, 128, 1) could not run on an input of shape (4, 64, 8, 8)" in messages(
        graded, "projection_on_stride_only")["block_output_shapes"]
    assert "the same cause as" in messages(graded, "projection_on_stride_only")["projection"]
    assert messages(graded, "blocks_mistyped")["stages"].startswith("layer2: expected 4 blocks, got 6")
    assert "the shortcut itself, without the ReLU after the addition" in messages(
        graded, "no_relu_after_add")["block_residual"]
    assert "could not run on an input of shape (4, 3, 32, 32)" in messages(graded, "avgpool_7")["stages_128"]


def test_feedback_shows_neither_check_source_nor_solution_code(graded):
    solution = {line.strip() for line in ASSIGNMENT.reference_module.read_text().splitlines()
                if "torch.optim." in line and "return" in line or "blocks = [3, 4, 6, 3]" in line}
    assert_feedback_hides(graded, long_lines(ASSIGNMENT.checks), solution)


def test_the_training_run_is_the_assignments_own_short_budget(graded):
    checklist = Checklist.of(ASSIGNMENT)
    budget = checklist.budget("cpu")
    assert (budget.steps, budget.batch, budget.one_batch) == (8, 32, True) and budget.classes == BUDGETS["cpu"].classes
    assert checklist.budget("cuda") == BUDGETS["cuda"]
    assert 200 in checklist.batches("net") and 200 not in checklist.batches("block")
    assert state(graded, "reference")["key"]["budget"]["steps"] == 8
    honest = messages(graded, "projection_everywhere")["training_keeps_up"]
    assert "lowest loss" in honest and "on one fixed batch of 32" in honest


# ---- make_optimizer as plain data ----

SHAPES = [[4, 3], [4], [2, 4]]


def description(function, *args):
    """What the child writes for `function(kind, parameters, lr)`, read back as the grader reads it."""
    data = export.make_optimizer(function, [args[0], {"parameters": SHAPES}, *args[1:]], {})
    return described(json.loads(json.dumps(data)), len(SHAPES))


def sgd(kind, parameters, lr):
    return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=5e-4)


def test_an_optimizer_is_described_and_built_again_from_torch_optim():
    got = description(sgd, "sgd", 0.1)
    assert (got.name, got.handed, got.option("lr"), got.option("momentum")) == ("SGD", 3, 0.1, 0.9)
    assert got.groups[0][0] == (0, 1, 2)
    built = got.build([nn.Parameter(torch.zeros(*s)) for s in SHAPES])
    assert type(built) is torch.optim.SGD and built.param_groups[0]["momentum"] == 0.9
    adam = description(lambda k, p, lr: torch.optim.Adam(p, lr=lr), "adam", 1e-3)
    assert adam.option("betas") == (0.9, 0.999)
    after = optimizer_steps(got, SHAPES)
    assert not all(torch.equal(a, b) for a, b in zip(after, optimizer_steps(description(sgd, "sgd", 0.2), SHAPES)))
    assert option_differences(description(sgd, "sgd", 0.2), got) == "lr 0.2 (expected 0.1)"


def test_parameter_groups_and_parameters_not_handed_in_are_described():
    def split(kind, parameters, lr):
        parameters = list(parameters)
        return torch.optim.SGD([{"params": parameters[:2]}, {"params": parameters[2:], "weight_decay": 0.0},
                                {"params": [nn.Parameter(torch.zeros(1))]}], lr=lr, momentum=0.9)
    got = description(split, "sgd", 0.1)
    assert [g[0] for g in got.groups] == [(0, 1), (2,), (-1,)]
    assert got.option("weight_decay", 1) == 0.0
    assert option_differences(got, description(sgd, "sgd", 0.1)) == "3 parameter groups (expected 1)"


def test_what_is_not_an_optimizer_fails_in_the_child_with_its_type():
    with pytest.raises(TypeError, match="expected a torch.optim optimizer, got NoneType"):
        export.make_optimizer(lambda k, p, lr: None, ["sgd", {"parameters": SHAPES}, 0.1], {})


GOOD = {"class": "SGD", "module": "torch.optim.sgd", "parameters": 3,
        "groups": [{"params": [0, 1, 2], "options": {"lr": 0.1, "momentum": 0.9, "nesterov": False}}]}


def group(**options):
    return {**GOOD, "groups": [{"params": [0, 1, 2], "options": {"lr": 0.1, **options}}]}


@pytest.mark.parametrize("data, says", [
    ([], "not an object"),
    ({**GOOD, "class": "LBFGS"}, "LBFGS, which the grader does not build"),
    ({**GOOD, "class": "os.system('x')"}, "class the grader can name"),
    ({**GOOD, "module": "submission"}, "a class of its own named SGD, not torch.optim.SGD"),
    ({**GOOD, "module": None}, "a class of its own"),
    ({**GOOD, "groups": []}, "no parameter groups"),
    ({**GOOD, "groups": [GOOD["groups"][0]] * 101}, "too many parameter groups"),
    ({**GOOD, "groups": [{"params": [0, 1, 3], "options": {}}]}, "not handed in"),
    ({**GOOD, "groups": [{"params": [True], "options": {}}]}, "not handed in"),
    ({**GOOD, "groups": [{"params": "0", "options": {}}]}, "not a list of parameters"),
    ({**GOOD, "groups": [{"params": [0], "options": {"lr": 0.1, **{f"k{i}": 1 for i in range(100)}}}]},
     "not a list of parameters"),
    (group(momentum="0.9"), "momentum is not a finite number"),
    (group(momentum=float("nan")), "momentum is not a finite number"),
    (group(weight_decay={"unsupported": "Tensor"}), "weight_decay is not a finite number"),
    (group(momentum=[0.9] * 9), "momentum is not a finite number"),
])
def test_a_hostile_description_is_refused_with_its_reason(data, says):
    with pytest.raises(OptimizerError, match=says.replace("(", r"\(").replace(")", r"\)")):
        described(data, 3)


def test_options_the_class_does_not_take_are_ignored_and_bad_values_are_torchs_to_refuse():
    got = described(group(momentum=0.9, note={"anything": [1]}, __init__=1), 3)
    assert set(got.groups[0][1]) == {"lr", "momentum"}
    with pytest.raises(OptimizerError, match="torch.optim.SGD refuses what was described: ValueError"):
        described(group(lr=-1.0), 3).build([nn.Parameter(torch.zeros(*s)) for s in SHAPES])
    with pytest.raises(OptimizerError, match="refuses"):  # one tensor in two groups
        described({**GOOD, "groups": [{"params": [0, 1], "options": {"lr": 0.1}},
                                      {"params": [1, 2], "options": {"lr": 0.1}}]}, 3).build(
            [nn.Parameter(torch.zeros(*s)) for s in SHAPES])


# ---- one export for two input sizes ----

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.conv(x), 1), 1))


def test_a_net_graded_at_two_sizes_exports_once_and_runs_at_both(tmp_path):
    assert export.dynamic_dims([[4, 3, 32, 32]], [[2, 3, 128, 128]]) == (0, 2, 3)
    assert export.dynamic_dims([[4, 3, 32, 32]], []) == (0,)
    graph, tensors = export.export_model(Net(), [torch.randn(4, 3, 32, 32)], dynamic=(0, 2, 3))
    model = rebuild.from_bytes(json.dumps(graph).encode(), save(tensors), [[4, 3, 32, 32]], (1, 8),
                               [[[2, 3, 128, 128]]])
    assert model.run(torch.randn(2, 3, 128, 128))[0].shape == (2, 2)


def test_the_dry_run_refuses_a_size_whose_tensors_would_not_fit(tmp_path):
    graph, tensors = export.export_model(Net(), [torch.randn(4, 3, 32, 32)], dynamic=(0, 2, 3))
    with pytest.raises(rebuild.RebuildError, match="limit"):
        rebuild.from_bytes(json.dumps(graph).encode(), save(tensors), [[4, 3, 32, 32]], (),
                           [[[2, 3, 1 << 14, 1 << 14]]])
