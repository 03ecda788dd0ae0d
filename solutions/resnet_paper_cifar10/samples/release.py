"""resnet_cifar.py: the graded code of resnet_paper_cifar10.ipynb.

Fill in the parts marked `fill in here`, here or in the notebook, and submit either file.
Keep every name and signature: the grader builds these classes by name.
`python resnet_cifar.py` runs the notebook's sanity checks.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv3x3(in_planes, planes, stride=1):
    # 3x3 convolution, padding 1, no bias: keeps H and W at stride 1, halves them at stride 2.
    return nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


class LambdaLayer(nn.Module):
    # A layer that applies a function to its input, e.g. LambdaLayer(lambda x: x[:, :, ::2, ::2]).
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    expansion = 1  # output channels = planes * expansion

    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        # fill in here (20 points): the main path and the shortcut.
        # conv1, bn1: conv3x3 with the stride, in_planes -> planes, then nn.BatchNorm2d
        # conv2, bn2: conv3x3 with stride 1, planes -> planes, then nn.BatchNorm2d
        # shortcut: nn.Sequential() where the shapes match; else option "A" (a LambdaLayer: every other pixel,
        # the new channels zero-padded, half before and half after) or option "B" (nn.Sequential of a 1x1
        # nn.Conv2d with the stride and no bias, and nn.BatchNorm2d)
        # self.conv1 = ...; self.bn1 = ...; self.conv2 = ...; self.bn2 = ...; self.shortcut = ...
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here (10 points): conv1 -> bn1 -> ReLU -> conv2 -> bn2, add self.shortcut(x), then ReLU
        # return the result
        raise NotImplementedError("fill in here: replace this line with your code")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def check_basic_block():
    x = torch.randn(2, 16, 8, 8)
    main = 16 * 32 * 9 + 32 * 32 * 9 + 2 * 2 * 32  # two 3x3 convs and two batch norms, 16 -> 32
    for in_planes, stride, option, shape, params in [
            (16, 1, "A", (2, 16, 8, 8), 16 * 16 * 9 * 2 + 2 * 2 * 16),
            (16, 2, "A", (2, 32, 4, 4), main),
            (16, 2, "B", (2, 32, 4, 4), main + 16 * 32 + 2 * 32)]:
        planes = shape[1]
        block = BasicBlock(in_planes, planes, stride, option=option)
        call = f"BasicBlock({in_planes}, {planes}, stride={stride}, option={option!r})"
        got = tuple(block(x).shape)
        assert got == shape, (
            f"{call} turned a {tuple(x.shape)} input into {got}, expected {shape}. The stride goes on conv1 only, "
            "both 3x3 convs have padding 1, and the shortcut must give the same shape as the main path.")
        count = count_parameters(block)
        assert count == params, (
            f"{call} has {count:,} parameters, expected {params:,}. "
            + ("Option A's shortcut has none." if option == "A" else "Option B adds a 1x1 conv (no bias) + BN."))
        print(f"{call}: {tuple(x.shape)} -> {got}, {count:,} parameters  ok")


class PlainBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        # fill in here (10 points, with forward): conv1, bn1, conv2, bn2 as in BasicBlock, and no shortcut
        # self.conv1 = ...; self.bn1 = ...; self.conv2 = ...; self.bn2 = ...
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here: conv1 -> bn1 -> ReLU -> conv2 -> bn2 -> ReLU, and return the result
        raise NotImplementedError("fill in here: replace this line with your code")


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10, option="A"):
        super().__init__()
        self.in_planes = 16
        # fill in here (25 points, with _make_layer): the stem, the three stages, the classifier.
        # conv1, bn1: conv3x3 3 -> 16 filters, then nn.BatchNorm2d(16); layer1, layer2, layer3:
        # self._make_layer(block, planes, n, stride, option) with 16, 32, 64 filters and strides 1, 2, 2;
        # linear: nn.Linear(64 * block.expansion, num_classes)
        # self.conv1 = …; self.bn1 = …; self.layer1 = …; self.layer2 = …; self.layer3 = …; self.linear = …
        raise NotImplementedError("fill in here: replace this line with your code")

        for m in self.modules():  # He initialisation, as in the paper
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def _make_layer(self, block, planes, n, stride, option):
        # fill in here: a list of n blocks, only the first with `stride`
        # self.in_planes = … after each block (its output channels); return the blocks as one nn.Sequential
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here (10 points): conv1 -> bn1 -> ReLU -> layer1 -> layer2 -> layer3 -> global average pooling
        # (F.adaptive_avg_pool2d(out, 1)) -> flatten to (N, 64) -> linear, and return the logits
        raise NotImplementedError("fill in here: replace this line with your code")


# fill in here (10 points): each builder is one line, with the n that gives its depth (6n + 2).

def resnet20(num_classes=10, option="A"):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet32(num_classes=10, option="A"):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet44(num_classes=10, option="A"):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet56(num_classes=10, option="A"):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet110(num_classes=10, option="A"):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def plain20(num_classes=10):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def plain32(num_classes=10):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def plain44(num_classes=10):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def plain56(num_classes=10):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


def plain110(num_classes=10):
    # return the network of this depth
    raise NotImplementedError("fill in here: replace this line with your code")


TABLE_6 = {  # depth: (parameters with option A, with option B)
    20: (269_722, 272_474), 32: (464_154, 466_906), 44: (658_586, 661_338), 56: (853_018, 855_770),
    110: (1_727_962, 1_730_714),
}
STAGE_SHAPES = [("conv1", (2, 16, 32, 32)), ("layer1", (2, 16, 32, 32)), ("layer2", (2, 32, 16, 16)),
                ("layer3", (2, 64, 8, 8))]


def check_resnet():
    net = resnet20()
    stages = {"conv1": lambda t: F.relu(net.bn1(net.conv1(t))), "layer1": net.layer1, "layer2": net.layer2,
              "layer3": net.layer3}
    out = torch.randn(2, 3, 32, 32)
    for name, expected in STAGE_SHAPES:
        out = stages[name](out)
        assert tuple(out.shape) == expected, (
            f"after {name} a batch of two images has shape {tuple(out.shape)}, expected {expected}: see the "
            "table above (only the first block of layer2 and layer3 has stride 2)")
        print(f"after {name}: {tuple(out.shape)}  ok")
    logits = net(torch.randn(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 10), f"resnet20() gave logits of shape {tuple(logits.shape)}, expected (2, 10)"
    assert tuple(resnet20(num_classes=7)(torch.randn(2, 3, 32, 32)).shape) == (2, 7), "num_classes is ignored"
    for depth, expected in TABLE_6.items():
        build = globals()[f"resnet{depth}"]
        got = tuple(count_parameters(build(option=option)) for option in "AB")
        assert got == expected, (
            f"resnet{depth} has {got[0]:,} parameters with option A and {got[1]:,} with B, expected "
            f"{expected[0]:,} and {expected[1]:,}. Check n (depth = 6n + 2) and the shortcuts.")
        plain = count_parameters(globals()[f"plain{depth}"]())
        assert plain == expected[0], f"plain{depth} has {plain:,} parameters, expected {expected[0]:,} (as option A)"
        print(f"resnet{depth}: {got[0]:,} parameters (option A), {got[1]:,} (option B); plain{depth}: {plain:,}  ok")


if __name__ == "__main__":  # run as a script, this file runs the notebook's sanity checks
    check_basic_block()
    check_resnet()
