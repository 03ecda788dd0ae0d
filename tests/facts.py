"""What the tests know of each assignment: its notebook's parts, sanity checks and settings. Counts and shapes
come from the paper or the course (../shared/spec/facts.md), never from the reference code under test."""
import torch

PROBE_RESNET50 = """
import json
_model = ResNet50_layer4(num_classes=10).eval()
_x, _shapes = torch.randn(2, 3, 32, 32), {"stem_conv": list(_model.layer1[0](torch.randn(2, 3, 32, 32)).shape)}
with torch.no_grad():
    for _stage in ("layer1", "layer2", "layer3", "layer4", "avgpool"):
        _x = getattr(_model, _stage)(_x)
        _shapes[_stage] = list(_x.shape)
print("PROBE " + json.dumps({"parameters": sum(p.numel() for p in _model.parameters()), "shapes": _shapes,
                             "output": list(_model(torch.randn(3, 3, 32, 32)).shape)}))
"""

PROBE_PAPER = """
import json
_model = resnet20().eval()
_x = F.relu(_model.bn1(_model.conv1(torch.randn(2, 3, 32, 32))))
_shapes = {"stem_conv": list(_x.shape)}
with torch.no_grad():
    for _stage in ("layer1", "layer2", "layer3"):
        _x = getattr(_model, _stage)(_x)
        _shapes[_stage] = list(_x.shape)
print("PROBE " + json.dumps({"parameters": sum(p.numel() for p in _model.parameters()), "shapes": _shapes,
                             "output": list(_model(torch.randn(3, 3, 32, 32)).shape)}))
"""

PROBE_RESNET34 = """
import json
_model = ResNet34().eval()
_x = _model.maxpool(_model.relu(_model.bn1(_model.conv1(torch.randn(2, 3, 32, 32)))))
_shapes = {"stem": list(_x.shape)}
with torch.no_grad():
    for _stage in ("layer1", "layer2", "layer3", "layer4"):
        _x = getattr(_model, _stage)(_x)
        _shapes[_stage] = list(_x.shape)
print("PROBE " + json.dumps({"parameters": sum(p.numel() for p in _model.parameters()), "shapes": _shapes,
                             "output": list(_model(torch.randn(3, 3, 32, 32)).shape)}))
"""

PROBE_FAMILY = """
import json
_model = resnet18(in_channels=1).eval()
_x = _model.maxpool(_model.relu(_model.bn1(_model.conv1(torch.randn(2, 1, 28, 28)))))
_shapes = {"stem": list(_x.shape)}
with torch.no_grad():
    for _stage in ("layer1", "layer2", "layer3", "layer4"):
        _x = getattr(_model, _stage)(_x)
        _shapes[_stage] = list(_x.shape)
print("PROBE " + json.dumps({"parameters": sum(p.numel() for p in _model.parameters()), "shapes": _shapes,
                             "output": list(_model(torch.randn(3, 1, 28, 28)).shape)}))
"""

FACTS = {
    "resnet50_cifar10": {
        "total": 120, "regions": 7, "solution_lines": 15,
        "solution_cells": {"residual_block", "resnet50_layer4"},
        "locked_cells": {"check_residual_block", "check_resnet50_layer4", "conv_helpers"},
        "first_stub": ("run_check_residual_block", "check_residual_block"),
        "epochs_line": "EPOCHS = 10 if FULL_RUN else 2",
        "full_run": {"EPOCHS": 10, "TRAIN_SUBSET": 0, "TEST_SUBSET": 0, "OPTIMIZER": "sgd", "LR": 0.01},
        "settings_start": "FULL_RUN = False  # True: all 50,000 images for 10 epochs",
        "sanity_lines": ["ResidualBlock(64, 64, 256, downsample=False): (2, 64, 8, 8) -> (2, 256, 8, 8)  ok",
                         "ResidualBlock(64, 64, 256, downsample=True): (2, 64, 8, 8) -> (2, 256, 4, 4)  ok",
                         "layer4: (1024, 2, 2)  ok", "output (2, 10), 14,750,730 parameters  ok"],
        "probe": PROBE_RESNET50,
        "network": {"parameters": 14_750_730, "output": [3, 10], "shapes": {
            "stem_conv": [2, 64, 16, 16], "layer1": [2, 64, 8, 8], "layer2": [2, 256, 4, 4],
            "layer3": [2, 512, 2, 2], "layer4": [2, 1024, 2, 2], "avgpool": [2, 1024, 1, 1]}},
        "trained": {"VGG-16", "ResNet-50 (layer4)"},
        "stubs": [lambda m: m.ResidualBlock(64, 64, 256, downsample=True),
                  lambda m: m.ResidualBlock(64, 64, 256, downsample=False),
                  lambda m: m.ResNet50_layer4(num_classes=10)],
    },
    "resnet_paper_cifar10": {
        "total": 100, "regions": 17, "solution_lines": 25,
        "solution_cells": {"basic_block", "plain_block", "resnet", "builders"},
        "locked_cells": {"check_basic_block", "check_resnet", "conv_helpers"},
        "first_stub": ("run_check_basic_block", "check_basic_block"),
        "epochs_line": "EPOCHS = 182 if FULL_RUN else 2",
        "full_run": {"EPOCHS": 182, "TRAIN_SUBSET": 0, "TEST_SUBSET": 0, "OPTIMIZER": "sgd", "LR": 0.1},
        "settings_start": "FULL_RUN = False  # True: the paper's recipe, 182 epochs",
        "sanity_lines": ["BasicBlock(16, 32, stride=2, option='A'): (2, 16, 8, 8) -> (2, 32, 4, 4), 13,952 "
                         "parameters  ok",
                         "BasicBlock(16, 32, stride=2, option='B'): (2, 16, 8, 8) -> (2, 32, 4, 4), 14,528 "
                         "parameters  ok",
                         "after layer3: (2, 64, 8, 8)  ok",
                         "resnet20: 269,722 parameters (option A), 272,474 (option B); plain20: 269,722  ok",
                         "resnet110: 1,727,962 parameters (option A), 1,730,714 (option B); plain110: 1,727,962  ok"],
        "probe": PROBE_PAPER,
        "network": {"parameters": 269_722, "output": [3, 10], "shapes": {
            "stem_conv": [2, 16, 32, 32], "layer1": [2, 16, 32, 32], "layer2": [2, 32, 16, 16],
            "layer3": [2, 64, 8, 8]}},
        "trained": {"plain-20", "ResNet-20", "plain-56", "ResNet-56"},
        "stubs": [lambda m: m.BasicBlock(16, 16), lambda m: m.PlainBlock(16, 32, 2), lambda m: m.resnet20(),
                  lambda m: m.ResNet(m.BasicBlock, [1, 1, 1])],
    },
    "resnet34_optimizers": {
        "total": 100, "regions": 7, "solution_lines": 20,
        "solution_cells": {"basic_block", "resnet34", "make_optimizer"},
        "locked_cells": {"check_basic_block", "check_resnet34", "check_make_optimizer", "conv_helpers"},
        "first_stub": ("run_check_basic_block", "check_basic_block"),
        "epochs_line": "EPOCHS = 10 if FULL_RUN else 2",
        "full_run": {"EPOCHS": 10, "TRAIN_SUBSET": 5000, "TEST_SUBSET": 0, "IMAGE_SIZE": 128, "SEEDS": (0, 1, 2),
                     "LRS": {"sgd": 0.01, "adam": 0.001, "sgd_m095": 0.01}},
        "settings_start": "FULL_RUN = False  # True: 5,000 images at 128 x 128",
        "sanity_lines": ["BasicBlock(64, 128, stride=1): (2, 64, 16, 16) -> (2, 128, 16, 16), 230,144 parameters "
                         "(projection 8,448)  ok",
                         "128x128 input, after layer4: (2, 512, 4, 4)  ok", "ResNet34(): 21,289,802 parameters  ok",
                         "make_optimizer('sgd_m095', ...): torch.optim.SGD, momentum 0.95, weight decay 0.0005, lr 0.1 "
                         "and 0.003 as given  ok",
                         "make_optimizer('rmsprop', ...): ValueError  ok"],
        "probe": PROBE_RESNET34,
        "network": {"parameters": 21_289_802, "output": [3, 10], "shapes": {  # the seed's table at 32 x 32
            "stem": [2, 64, 8, 8], "layer1": [2, 64, 8, 8], "layer2": [2, 128, 4, 4], "layer3": [2, 256, 2, 2],
            "layer4": [2, 512, 1, 1]}},
        # the study (three optimizers, seeds 0 and 1) and the lr sweep of SGD at one seed
        "trained": {f"{name} lr 0.001 seed {seed}" for name in ("sgd", "adam", "sgd_m095") for seed in (0, 1)}
        | {"sgd lr 0.003 seed 0", "sgd lr 0.0003 seed 0"},
        "stubs": [lambda m: m.BasicBlock(64, 64), lambda m: m.ResNet34(),
                  lambda m: m.make_optimizer("sgd", [torch.nn.Parameter(torch.zeros(1))], 0.1)],
    },
    "resnet_family": {
        "total": 100, "regions": 13, "solution_lines": 40,
        "solution_cells": {"blocks", "resnet", "builders"},
        "locked_cells": {"check_blocks", "check_resnet", "conv_helpers"},
        "first_stub": ("run_check_blocks", "check_blocks"),
        "epochs_line": "EPOCHS = 10 if FULL_RUN else 2",
        "full_run": {"EPOCHS": 10, "TRAIN_SUBSET": 0, "TEST_SUBSET": 0,
                     "DEPTHS": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
        "settings_start": "FULL_RUN = False  # True: every depth",
        "sanity_lines": ["Bottleneck(64, 64, stride=1): -> (2, 256, 16, 16), 75,008 parameters (projection 16,896)  ok",
                         "resnet18(in_channels=1) on 28x28: layer1 (64, 7, 7), layer2 (128, 4, 4)",
                         "resnet50: 23,528,522 parameters (23,522,250 with in_channels=1)  ok",
                         "resnet152: 58,164,298 parameters (58,158,026 with in_channels=1)  ok"],
        "probe": PROBE_FAMILY,
        "network": {"parameters": 11_175_370, "output": [3, 10], "shapes": {  # facts.md; a digit through the stem
            "stem": [2, 64, 7, 7], "layer1": [2, 64, 7, 7], "layer2": [2, 128, 4, 4], "layer3": [2, 256, 2, 2],
            "layer4": [2, 512, 1, 1]}},
        "trained": {f"{depth} on {data}" for depth in ("resnet18", "resnet50") for data in ("cifar10", "mnist")},
        "history_data": "a synthetic CIFAR-10-format set; an MNIST-format set of scikit-learn's handwritten digits",
        "stubs": [lambda m: m.BasicBlock(64, 64), lambda m: m.Bottleneck(64, 64), lambda m: m.resnet18(),
                  lambda m: m.ResNet(m.BasicBlock, [1, 1, 1, 1])],
    },
}
