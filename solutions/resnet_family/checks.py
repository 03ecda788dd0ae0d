"""Hidden checks of resnet_family. Graded out of 100: the two blocks 30, ResNet 30, the five builders 25, the short
training run on MNIST-format digits 15. Behavioural: shortcuts are found by silencing a block's main path, shapes
and FLOPs are measured here on the rebuilt graphs (FLOPs by torch's own counter, never the student's), and the deep
builders (ResNet-101, 152) are judged by the parameters they list when built, without running them.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.grade import call_of
from autograder.probes import (TRAINING_PART, count, expect, flops, input_convolutions, last_linear,
                               listed_parameters, listed_shapes, main_path_parameters, parameters, part_shapes,
                               projection, shapes_of, shortcut_only, training_checks)


def block(name, kind, args, channels=64):
    return {"name": name, "build": kind, "args": args, "inputs": [[4, channels, 8, 8]]}


def net(name, builder, shape, **kwargs):
    """A net run whole, and stage by stage on the inputs its stages get, so a right stage earns its points beside a
    broken one."""
    w, side = WIDTH[builder], shape[2] // 4  # the stem divides H and W by 4
    return {"name": name, "build": builder, "kwargs": kwargs, "inputs": [shape],
            "parts": {"conv1": [shape], "layer1": [[4, 64, side, side]], "layer2": [[4, 64 * w, side, side]],
                      "layer3": [[4, 128 * w, (side + 1) // 2, (side + 1) // 2]],
                      "layer4": [[4, 256 * w, (side + 3) // 4, (side + 3) // 4]]}}


def built(name, builder, **kwargs):
    """Built in the sandbox and listed, never run: what the parameter and structure checks need."""
    return {"name": name, "build": builder, "kwargs": kwargs, "inputs": [[2, kwargs.get("in_channels", 3), 32, 32]],
            "export": False}


BUILDERS = {"resnet18": ("BasicBlock", [2, 2, 2, 2]), "resnet34": ("BasicBlock", [3, 4, 6, 3]),
            "resnet50": ("Bottleneck", [3, 4, 6, 3]), "resnet101": ("Bottleneck", [3, 4, 23, 3]),
            "resnet152": ("Bottleneck", [3, 8, 36, 3])}
WIDTH = {name: 4 if kind == "Bottleneck" else 1 for name, (kind, _) in BUILDERS.items()}  # the block's expansion
AT_224 = [1, 3, 224, 224]
EXPORTS = [  # the cheap ones first: what a slow or killed child still reaches
    block("basic", "BasicBlock", [64, 64]),
    block("basic_down", "BasicBlock", [64, 128, 2]),
    block("bottle", "Bottleneck", [256, 64], channels=256),
    block("bottle_first", "Bottleneck", [64, 64]),  # layer1's first block: the channels change, the size does not
    block("bottle_down", "Bottleneck", [256, 128, 2], channels=256),
    *[built(f"rgb_{name}", name) for name in BUILDERS],
    *[built(f"gray_{name}", name, in_channels=1) for name in BUILDERS],
    built("classes", "resnet50", num_classes=7),
    net("digits", "resnet18", [4, 1, 28, 28], in_channels=1),
    {**net("r18", "resnet18", [4, 3, 32, 32]), "sizes": [AT_224]},
    {**net("r50", "resnet50", [4, 3, 32, 32]), "sizes": [AT_224]},
]
SPEC = {e["name"]: e for e in EXPORTS}
TRAINING_MODEL = "digits"
# nbgrader's view (autograde --nbgrader): one autograded cell of the instructor notebook per part, scored with the
# points of its checks
PARTS = {
    "blocks": ["block_output_shapes", "basic_block_layers", "bottleneck_layers", "identity_shortcut", "projection",
               "block_residual"],
    "resnet": ["stem", "stages", "flops", "num_classes"],
    "builders": ["parameters", "in_channels", "structure_basic", "structure_bottleneck"],
    "training": TRAINING_PART,
}
TRAINING_DATA = "mnist"
# ResNet-18 on 28 x 28 digits: after the ImageNet stem a 7 x 7 map, 1 x 1 after layer4, so a step is cheap.
TRAINING_BUDGET = {"cpu": {"classes": (3, 5, 8), "steps": 40, "batch": 16, "lr": 1e-3, "held_out": 300}}
# FLOPs at 224 x 224 of resnet50() at 10 classes with the stride on the bottleneck's first 1x1 (the paper's
# ResNet-50) instead of its 3x3 (torchvision's): 3.86 GMACs, the paper's "3.8 x 10^9". Measured with torch's counter
# on the reference with its strides moved; the sample stride_on_first_1x1 is graded against it.
PAPER_R50_FLOPS = 7_711_891_456
STAGES = ("layer1", "layer2", "layer3", "layer4")


def call(name):
    """How the feedback names export `name`: the call that built it, `Bottleneck(256, 128, 2)`."""
    return call_of(SPEC[name])


def block_input(name, batch=3):
    return torch.randn(batch, *SPEC[name]["inputs"][0][1:])


def out_shape(name, batch=3):
    spec = SPEC[name]
    _, _, h, w = spec["inputs"][0]
    channels, stride = spec["args"][1], (spec["args"][2:] or [1])[0]
    return batch, channels * (4 if spec["build"] == "Bottleneck" else 1), h // stride, w // stride


def projection_of(model, name):
    """The block's projection (see probes.projection): a 1x1 convolution from the block's input to its output
    width, reading the input itself."""
    _, in_c, _, _ = SPEC[name]["inputs"][0]
    out_c = out_shape(name)[1]
    reads_input = input_convolutions(model)
    return projection(model, lambda path, shape, stride: shape == (out_c, in_c, 1, 1) and path in reads_input)


def main_path(model, name):
    """A pick of the block's main path: every convolution but its projection."""
    found = projection_of(model, name)
    return lambda path, shape, stride: not found or path != found[0]


def kernels(model):
    return [f"{k}x{k}" for _, (_, _, k, _), _ in model.convolutions()]


# ---- the blocks ------------------------------------------------------------------------------------------------

@pytest.mark.points(5)
def test_block_output_shapes(submission):
    """BasicBlock gives `channels` channels, Bottleneck 4 x `channels` (expansion 4); stride 2 halves H and W"""
    for name in ("basic", "basic_down", "bottle", "bottle_first", "bottle_down"):
        got, _ = shapes_of(submission.model(name), *block_input(name).shape)
        expect(got == out_shape(name), call(name), f"output {out_shape(name)}", f"{got}",
               "the output has channels * expansion channels (expansion = 1 in BasicBlock, 4 in Bottleneck); only "
               "the stride halves H and W, and every 3x3 conv has padding 1")


@pytest.mark.points(5)
def test_basic_block_layers(submission):
    """BasicBlock: two 3x3 convolutions in -> channels -> channels, the stride on the first, each with batch norm"""
    for name in ("basic", "basic_down"):
        model, ref = submission.model(name), submission.reference.model(name)
        main, ref_main = main_path(model, name), main_path(ref, name)
        got = [(s[1], s[0], k[0], f"{s[2]}x{s[3]}") for p, s, k in model.convolutions() if main(p, s, k)]
        want = [(s[1], s[0], k[0], f"{s[2]}x{s[3]}") for p, s, k in ref.convolutions() if ref_main(p, s, k)]
        expect(got == want, call(name), " then ".join(f"{k} {i}->{o} stride {s}" for i, o, s, k in want),
               " then ".join(f"{k} {i}->{o} stride {s}" for i, o, s, k in got) or "no convolution",
               "conv1 = conv3x3(in_channels, channels, stride), conv2 = conv3x3(channels, channels)")
        got_count, want_count = main_path_parameters(model, main), main_path_parameters(ref, ref_main)
        expect(got_count == want_count, call(name), f"{count(want_count)} parameters in the convs and their batch "
               "norms", count(got_count), "each conv (no bias) is followed by nn.BatchNorm2d(its output channels)")


@pytest.mark.points(5)
def test_bottleneck_layers(submission):
    """Bottleneck: 1x1 in -> channels, 3x3 channels -> channels, 1x1 channels -> 4 x channels, each with batch norm;
    the stride on the 3x3 (torchvision) or on the first 1x1 (the paper): both are right"""
    for name in ("bottle", "bottle_down"):
        model, ref = submission.model(name), submission.reference.model(name)
        main, ref_main = main_path(model, name), main_path(ref, name)
        got = [(s[1], s[0], f"{s[2]}x{s[3]}") for p, s, k in model.convolutions() if main(p, s, k)]
        want = [(s[1], s[0], f"{s[2]}x{s[3]}") for p, s, k in ref.convolutions() if ref_main(p, s, k)]
        expect(got == want, call(name), " then ".join(f"{k} {i}->{o}" for i, o, k in want),
               " then ".join(f"{k} {i}->{o}" for i, o, k in got) or "no convolution",
               "conv1 = conv1x1(in_channels, channels), conv2 = conv3x3(channels, channels, stride), conv3 = "
               "conv1x1(channels, channels * self.expansion) with expansion = 4")
        strides = [k[0] for p, s, k in model.convolutions() if main(p, s, k)]
        stride = (SPEC[name]["args"][2:] or [1])[0]
        on = {(1, stride, 1): "the 3x3, as torchvision does", (stride, 1, 1): "the first 1x1, as the paper does"}
        expect(tuple(strides) in on, call(name), f"stride {stride} on the 3x3 (or on the first 1x1)",
               "strides " + ", ".join(map(str, strides)), "one conv of the main path has the block's stride")
        if stride != 1:
            submission.note(f"{call(name)}: the stride is on {on[tuple(strides)]}")
        got_count, want_count = main_path_parameters(model, main), main_path_parameters(ref, ref_main)
        expect(got_count == want_count, call(name), f"{count(want_count)} parameters in the convs and their batch "
               "norms", count(got_count), "each conv (no bias) is followed by nn.BatchNorm2d(its output channels)")


def blocks_with_projection(shapes: dict) -> list:
    """The blocks ("layer2.0") of a listed parameter set ({name: shape}) that hold a projection: a 1x1 conv beyond
    their main path's (a block with one 3x3 is a Bottleneck, whose main path has two 1x1s; a BasicBlock has none)."""
    per_block = {}
    for key, shape in shapes.items():
        parts = key.split(".")
        if parts[0] in STAGES and len(shape) == 4 and len(parts) > 2:
            per_block.setdefault(".".join(parts[:2]), []).append(shape[2:])
    found = []
    for name, kernels in per_block.items():
        ones, threes = sum(k == [1, 1] for k in kernels), sum(k == [3, 3] for k in kernels)
        if ones > (2 if threes == 1 else 0):
            found.append(name)
    return sorted(found)


@pytest.mark.points(5)
def test_identity_shortcut(submission):
    """Where the shapes match the shortcut is the identity (no parameters): in BasicBlock(64, 64), Bottleneck(256,
    64), and every block of resnet18() and resnet50() but the few that change the shape"""
    for name in ("basic", "bottle"):
        model = submission.model(name)
        extra = parameters(model) - main_path_parameters(model, main_path(model, name))
        expect(extra == 0, call(name), "a shortcut without parameters", f"{count(extra)} parameters outside the main "
               "path", "stride 1 and in_channels == channels * expansion: self.downsample = None, and x is added")
    for builder in ("resnet18", "resnet50"):
        got = blocks_with_projection(listed_shapes(submission, f"rgb_{builder}"))
        want = blocks_with_projection(submission.reference.parameter_shapes[f"rgb_{builder}"])
        expect(got == want, f"{builder}()", "a projection in " + ", ".join(want) + " only", ", ".join(got) or "none",
               "build the projection only when stride != 1 or in_channels != channels * expansion")


@pytest.mark.points(5)
def test_projection(submission):
    """Where the stride or the width changes, the shortcut is a 1x1 convolution with the stride, then batch norm"""
    for name in ("basic_down", "bottle_first", "bottle_down"):
        _, in_c, _, _ = SPEC[name]["inputs"][0]
        out_c, stride = out_shape(name)[1], (SPEC[name]["args"][2:] or [1])[0]
        found = projection_of(submission.model(name), name)
        expect(found is not None and found[2] == (stride, stride), call(name),
               f"a 1x1 convolution {in_c} -> {out_c} with stride {stride} on the input, followed by batch norm",
               f"stride {found[2][0]}" if found else "no such convolution followed by batch norm",
               "self.downsample = nn.Sequential(conv1x1(in_channels, channels * self.expansion, stride), "
               "nn.BatchNorm2d(channels * self.expansion)) when the stride or the width changes")


@pytest.mark.points(5)
def test_block_residual(submission):
    """Both blocks add their shortcut, then apply ReLU: with the main path silenced they output ReLU(shortcut(x))"""
    for name in ("basic", "basic_down", "bottle", "bottle_down"):
        model, x = submission.model(name), block_input(name)
        found = projection_of(model, name)  # whether a projection belongs here is the checks above's business
        shortcut = found[3](x) if found else x
        out = shortcut_only(model, x, main_path(model, name))
        seen = ("zeros (no shortcut is added)" if not out.abs().sum() else "the shortcut itself, without the ReLU "
                "after the addition" if out.shape == shortcut.shape and torch.allclose(out, shortcut, rtol=1e-4,
                                                                                       atol=1e-5)
                else "something else")
        expect(out.shape == shortcut.shape and torch.allclose(out, F.relu(shortcut), rtol=1e-4, atol=1e-5),
               call(name), "with the main path silenced, ReLU(" + ("BN(1x1 conv(x))" if found else "x") + "): the "
               "shortcut added, then the ReLU", seen, "out += identity (x, or self.downsample(x)), then return "
               "self.relu(out)")


# ---- ResNet ----------------------------------------------------------------------------------------------------

def stage_shapes(submission, name, stage):
    return part_shapes(submission, name, stage, 2, SPEC[name])


@pytest.mark.points(5)
def test_stem(submission):
    """ResNet's stem: a 7x7 convolution in_channels -> 64 with stride 2 and a 3x3 max pool with stride 2; 1 input
    channel for MNIST"""
    for name, channels in (("r18", 3), ("digits", 1)):
        _, convs = stage_shapes(submission, name, "conv1")
        first = convs[0] if convs else None
        expect(first is not None and first[1] == (64, channels, 7, 7) and first[2] == (2, 2), call(name),
               f"a first convolution 7x7, {channels} -> 64, stride 2", f"{first[1][2]}x{first[1][3]}, {first[1][1]} "
               f"-> {first[1][0]}, stride {first[2][0]}" if first else "none",
               "nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)")
    if submission.available("r18"):
        got = shapes_of(submission.model("r18"), 2, 3, 32, 32)[1].get("layer1.0.conv1")
        expect(got == (2, 64, 8, 8), "resnet18()'s stem", "64 x 8 x 8 into layer1 at 32 x 32 (32 -> 16 by the "
               "conv, -> 8 by the max pool)", f"{got[1:] if got else '?'} out of layer1's first convolution",
               "after conv1, bn1 and ReLU: nn.MaxPool2d(kernel_size=3, stride=2, padding=1)")


@pytest.mark.points(10)
def test_stages(submission):
    """Each stage's output: resnet18() and resnet50() on 32 x 32 x 3 images, resnet18(in_channels=1) on 28 x 28 x 1
    digits; layer2 to layer4 halve H and W and double the width (x 4 in a Bottleneck net)"""
    for name in ("r18", "r50", "digits"):
        _, ref_shapes = shapes_of(submission.reference.model(name), 2, *SPEC[name]["inputs"][0][1:])
        for stage in STAGES:
            shapes, convs = stage_shapes(submission, name, stage)
            want = ref_shapes[stage][1:]
            got = shapes.get(stage, (None, "?"))[1:]
            expect(got == want, f"{call(name)}: {stage}", f"output {want}", f"{got}",
                   "only a stage's first block has the stride (1 in layer1, 2 in the others), passed on by "
                   "_make_layer; the block's output width is channels * expansion")


@pytest.mark.points(10)
def test_flops(submission):
    """FLOPs at 224 x 224, counted by the grader with torch.utils.flop_counter on the rebuilt nets: resnet18() and
    resnet50() as the reference (the paper's table: 1.8 and 3.8 x 10^9 multiply-adds)"""
    for name in ("r18", "r50"):
        got, want = flops(submission.model(name), *AT_224), flops(submission.reference.model(name), *AT_224)
        accepted = {want: "torchvision's"} | ({PAPER_R50_FLOPS: "the paper's (stride on the first 1x1)"}
                                              if name == "r50" else {})
        expect(got in accepted, f"{call(name)} at 224 x 224", f"{want / 2e9:.2f} GMACs ({want:,} FLOPs)",
               f"{got / 2e9:.2f} GMACs ({got:,} FLOPs)", "the stem (7x7 conv with stride 2, then the max pool) and "
               "the strides decide the map sizes every later conv runs at; the stage checks locate the difference")


@pytest.mark.points(5)
def test_num_classes(submission):
    """resnet50(num_classes=7) ends in a linear layer 2048 -> 7"""
    got = last_linear(submission, "classes")
    expect(got == (7, 2048), "resnet50(num_classes=7)", "a last linear layer 2048 -> 7",
           f"{got[1]} -> {got[0]}" if got else "no linear layer",
           "nn.Linear(512 * block.expansion, num_classes): 2048 features come out of a Bottleneck net's layer4")


# ---- the five builders -----------------------------------------------------------------------------------------

@pytest.mark.points(5)
def test_parameters(submission):
    """Parameters at 10 classes: 11,181,642 / 21,289,802 / 23,528,522 / 42,520,650 / 58,164,298 for ResNet-18 to
    152"""
    wrong = []
    for builder in BUILDERS:
        got = listed_parameters(submission, f"rgb_{builder}")
        want = listed_parameters(submission.reference, f"rgb_{builder}")
        if got != want:
            wrong.append(f"{builder}: {count(got)} (expected {count(want)})")
    expect(not wrong, "the builders", "the table's parameter counts", "; ".join(wrong),
           "the structure checks say which blocks or stages differ")


@pytest.mark.points(5)
def test_in_channels(submission):
    """With in_channels=1 (MNIST) only the stem shrinks: every builder has 6,272 parameters fewer (64 x 2 x 7 x 7)"""
    wrong = []
    for builder in BUILDERS:
        got = listed_parameters(submission, f"rgb_{builder}") - listed_parameters(submission, f"gray_{builder}")
        want = (listed_parameters(submission.reference, f"rgb_{builder}")
                - listed_parameters(submission.reference, f"gray_{builder}"))
        if got != want:
            wrong.append(f"{builder}: {count(got)} fewer")
    expect(not wrong, "the builders with in_channels=1", f"{count(want)} parameters fewer than with 3 channels",
           "; ".join(wrong), "pass in_channels on from each builder to ResNet, and use it in conv1: "
           "nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)")


def structure(shapes: dict) -> dict:
    """{stage: (blocks, the kernels of one block's main path)} read off a listed parameter set ({name: shape})."""
    blocks = {}
    for key, shape in shapes.items():
        parts = key.split(".")
        if parts[0] in STAGES and len(shape) == 4 and len(parts) > 2:
            blocks.setdefault(parts[0], {}).setdefault(parts[1], []).append(shape)
    found = {}
    for stage in STAGES:
        inner = blocks.get(stage, {})
        last = inner[max(inner, key=lambda b: int(b) if b.isdigit() else -1)] if inner else []
        found[stage] = (len(inner), ", ".join(f"{s[2]}x{s[3]}" for s in last))
    return found


def _structure(submission, builders):
    for builder in builders:
        kind, layers = BUILDERS[builder]
        got = structure(listed_shapes(submission, f"rgb_{builder}"))
        want = structure(submission.reference.parameter_shapes[f"rgb_{builder}"])
        expect(got == want, f"{builder}()", f"{kind}s, layers {layers}: " + "; ".join(
               f"{stage} {n} blocks of {k}" for stage, (n, k) in want.items()),
               "; ".join(f"{stage} {n} blocks of {k or 'no convolution'}" for stage, (n, k) in got.items()),
               f"{builder} is ResNet({kind}, {layers}, ...), the table's {builder[6:]}-layer column")


@pytest.mark.points(5)
def test_structure_basic(submission):
    """resnet18 and resnet34: BasicBlocks (two 3x3 convs), layers [2, 2, 2, 2] and [3, 4, 6, 3]"""
    _structure(submission, ("resnet18", "resnet34"))


@pytest.mark.points(10)
def test_structure_bottleneck(submission):
    """resnet50, resnet101 and resnet152: Bottlenecks (1x1, 3x3, 1x1), layers [3, 4, 6, 3], [3, 4, 23, 3] and
    [3, 8, 36, 3]"""
    _structure(submission, ("resnet50", "resnet101", "resnet152"))


test_training_gradient_reaches_every_layer, test_training_loss_falls, test_training_keeps_up = \
    training_checks("resnet18(in_channels=1)", input_side="conv1.", accuracy_fraction=0.8)
