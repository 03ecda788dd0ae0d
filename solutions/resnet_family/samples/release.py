"""resnet_family.py: the graded code of resnet_family.ipynb.

Fill in the parts marked `fill in here`, here or in the notebook, and submit either file.
Keep every name and signature: the grader builds these classes by name.
`python resnet_family.py` runs the notebook's sanity checks.
"""
import torch
import torch.nn as nn


def conv3x3(in_channels, out_channels, stride=1):
    # 3x3 convolution, padding 1, no bias (batch norm follows): keeps H and W at stride 1, halves them at stride 2
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    # 1x1 convolution, no bias: the bottleneck's reduce and expand layers, and the projection shortcut
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1  # the block outputs channels * expansion channels

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        # fill in here (10 points): two 3x3 convs (the stride on the first), each followed by batch norm, and a
        # projection only where the shapes change.
        # conv1, bn1: conv3x3(in_channels, channels, stride), nn.BatchNorm2d; relu: nn.ReLU(inplace=True)
        # conv2, bn2: conv3x3(channels, channels), nn.BatchNorm2d
        # downsample: None where stride is 1 and in_channels == channels * expansion; else nn.Sequential of
        # conv1x1(in_channels, channels * expansion, stride) and nn.BatchNorm2d
        # self.conv1 = …; self.bn1 = …; self.relu = …; self.conv2 = …; self.bn2 = …; self.downsample = …
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here: conv1 -> bn1 -> ReLU -> conv2 -> bn2, add the shortcut (x, or self.downsample(x)), ReLU
        # return the result
        raise NotImplementedError("fill in here: replace this line with your code")


class Bottleneck(nn.Module):
    expansion = 4  # the block outputs channels * expansion channels

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        # fill in here (15 points): 1x1 (reduce to channels) -> 3x3 (channels, with the stride) -> 1x1 (expand to
        # channels * expansion), each followed by batch norm, and a projection only where the shapes change.
        # conv1, bn1: conv1x1(in_channels, channels); conv2, bn2: conv3x3(channels, channels, stride);
        # conv3, bn3: conv1x1(channels, channels * expansion); relu: nn.ReLU(inplace=True)
        # downsample: as in BasicBlock
        # self.conv1 = …; self.bn1 = …; self.conv2 = …; self.bn2 = …; self.conv3 = …; self.bn3 = …; self.relu = …; self.downsample = …
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here: conv1 -> bn1 -> ReLU -> conv2 -> bn2 -> ReLU -> conv3 -> bn3, add the shortcut, ReLU
        # return the result
        raise NotImplementedError("fill in here: replace this line with your code")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def run_shape(call, module, x):
    # module(x).shape, or an AssertionError that says what to look at when torch refuses the shapes
    try:
        return tuple(module(x).shape)
    except RuntimeError as error:
        if type(error) is not RuntimeError:  # only torch's shape errors get a hint; any other error as it is
            raise
        raise AssertionError(
            f"{call} failed on a {tuple(x.shape)} input ({first_line(error)}). Check each conv's channels and its "
            "batch norm's width, and the shortcut: it must give the main path's shape, so it needs a projection "
            "(conv1x1 with the stride, then BatchNorm2d) wherever the stride or the width changes.") from error


def check_blocks():
    bn = lambda c: 2 * c  # noqa: E731  (a batch norm's weight and bias)
    cases = [  # block, in_channels, channels, stride, expected output, main path parameters, projection parameters
        (BasicBlock, 64, 64, 1, (2, 64, 16, 16), 2 * 9 * 64 * 64 + 2 * bn(64), 0),
        (BasicBlock, 64, 128, 2, (2, 128, 8, 8), 9 * 64 * 128 + 9 * 128 * 128 + 2 * bn(128), 64 * 128 + bn(128)),
        (Bottleneck, 256, 64, 1, (2, 256, 16, 16), 256 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * bn(64) + bn(256), 0),
        (Bottleneck, 64, 64, 1, (2, 256, 16, 16), 64 * 64 + 9 * 64 * 64 + 64 * 256 + 2 * bn(64) + bn(256),
         64 * 256 + bn(256)),
        (Bottleneck, 256, 128, 2, (2, 512, 8, 8), 256 * 128 + 9 * 128 * 128 + 128 * 512 + 2 * bn(128) + bn(512),
         256 * 512 + bn(512)),
    ]
    for kind, in_channels, channels, stride, shape, main, projection in cases:
        block = kind(in_channels, channels, stride)
        call = f"{kind.__name__}({in_channels}, {channels}, stride={stride})"
        got = run_shape(call, block, torch.randn(2, in_channels, 16, 16))
        assert got == shape, (
            f"{call} turned a (2, {in_channels}, 16, 16) input into {got}, expected {shape}: the output has "
            f"channels * expansion = {channels} * {kind.expansion} channels, and only the stride changes H and W")
        total = count_parameters(block)
        assert total == main + projection, (
            f"{call} has {total:,} parameters, expected {main + projection:,}: the main path's {main:,}"
            + (f" and the projection's {projection:,} (a 1x1 conv without bias, with the stride, and a BatchNorm2d)"
               if projection else "; the shapes match, so the shortcut is the identity, without parameters"))
        shortcut = f"projection {projection:,}" if projection else "identity shortcut"
        print(f"{call}: -> {got}, {total:,} parameters ({shortcut})  ok")


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=10, in_channels=3):
        super().__init__()
        self.inplanes = 64  # channels entering the next block; _make_layer updates it
        # fill in here (35 points, with _make_layer and forward): the table's rows.
        # conv1: nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False); bn1; relu;
        # maxpool: nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # layer1 ... layer4: self._make_layer(block, channels, blocks, stride) with channels 64, 128, 256, 512,
        # blocks layers[0] ... layers[3] and strides 1, 2, 2, 2
        # avgpool: nn.AdaptiveAvgPool2d(1); fc: nn.Linear(512 * block.expansion, num_classes)
        # the stem: self.conv1 = …; self.bn1 = …; self.relu = …; self.maxpool = …
        raise NotImplementedError("fill in here: replace this line with your code")
        # self.layer1 = …; self.layer2 = …; self.layer3 = …; self.layer4 = …; self.avgpool = …; self.fc = …
        raise NotImplementedError("fill in here: replace this line with your code")

    def _make_layer(self, block, channels, blocks, stride):
        # fill in here: `blocks` blocks, only the first with `stride`, returned as one nn.Sequential;
        # after each block, self.inplanes = … (that block's output channels)
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here: conv1 -> bn1 -> ReLU -> maxpool -> layer1 ... layer4 -> avgpool -> flatten -> fc
        # return the logits
        raise NotImplementedError("fill in here: replace this line with your code")


# fill in here (25 points): the five columns of the table, each one line:
# return ResNet(the column's block type, its four block counts, num_classes, in_channels)
def resnet18(num_classes=10, in_channels=3):
    # return ResNet(...)
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet34(num_classes=10, in_channels=3):
    # return ResNet(...)
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet50(num_classes=10, in_channels=3):
    # return ResNet(...)
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet101(num_classes=10, in_channels=3):
    # return ResNet(...)
    raise NotImplementedError("fill in here: replace this line with your code")


def resnet152(num_classes=10, in_channels=3):
    # return ResNet(...)
    raise NotImplementedError("fill in here: replace this line with your code")


PARAMETERS = {  # at 10 classes: (3 input channels, 1 input channel)
    "resnet18": (11_181_642, 11_175_370), "resnet34": (21_289_802, 21_283_530),
    "resnet50": (23_528_522, 23_522_250), "resnet101": (42_520_650, 42_514_378),
    "resnet152": (58_164_298, 58_158_026),
}
BUILDERS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
            "resnet152": resnet152}
STAGE_SHAPES = {  # (input channels, size): the shape after the stem and each stage of resnet18, for two images;
    # resnet50's have 4 times the channels after each stage
    (3, 32): [("stem", (2, 64, 8, 8)), ("layer1", (2, 64, 8, 8)), ("layer2", (2, 128, 4, 4)),
              ("layer3", (2, 256, 2, 2)), ("layer4", (2, 512, 1, 1))],
    (1, 28): [("stem", (2, 64, 7, 7)), ("layer1", (2, 64, 7, 7)), ("layer2", (2, 128, 4, 4)),
              ("layer3", (2, 256, 2, 2)), ("layer4", (2, 512, 1, 1))],
}


def check_resnet():
    for builder, width in (("resnet18", 1), ("resnet50", 4)):
        for (channels, size), shapes in STAGE_SHAPES.items():
            net = BUILDERS[builder](in_channels=channels)
            stages = {"stem": lambda t: net.maxpool(net.relu(net.bn1(net.conv1(t)))), "layer1": net.layer1,
                      "layer2": net.layer2, "layer3": net.layer3, "layer4": net.layer4}
            out = torch.randn(2, channels, size, size)
            for name, (n, c, h, w) in shapes:
                expected = (n, c * (width if name != "stem" else 1), h, w)
                got = run_shape(f"{builder}(in_channels={channels})'s {name}", stages[name], out)
                assert got == expected, (
                    f"{builder}(in_channels={channels}): after {name} two {size}x{size} images have shape {got}, "
                    f"expected {expected}: the stem divides H and W by 4 (7x7 conv with stride 2, 3x3 max pool "
                    "with stride 2); only the first block of layer2 to layer4 has stride 2")
                out = stages[name](out)
            logits = run_shape(f"{builder}(in_channels={channels})", net, torch.randn(2, channels, size, size))
            assert logits == (2, 10), (
                f"{builder}(in_channels={channels}) gave logits of shape {logits}, expected (2, 10): "
                "nn.AdaptiveAvgPool2d(1), flatten, then nn.Linear(512 * block.expansion, num_classes)")
            print(f"{builder}(in_channels={channels}) on {size}x{size}: "
                  + ", ".join(f"{name} {tuple(s[1:])}" for name, s in shapes[1:]) + f" (x{width} channels), "
                  f"logits {logits}  ok")
    for builder, (rgb, gray) in PARAMETERS.items():
        got = (count_parameters(BUILDERS[builder]()), count_parameters(BUILDERS[builder](in_channels=1)))
        assert got == (rgb, gray), (
            f"{builder}() has {got[0]:,} parameters and {builder}(in_channels=1) {got[1]:,}; expected {rgb:,} and "
            f"{gray:,}: check the block type and the layers list against the table of section 1, and that "
            "in_channels reaches conv1")
        print(f"{builder}: {rgb:,} parameters ({gray:,} with in_channels=1)  ok")
    logits = resnet50(num_classes=7)(torch.randn(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 7), (
        f"resnet50(num_classes=7) gave logits of shape {tuple(logits.shape)}, expected (2, 7)")
    print("resnet50(num_classes=7): output (2, 7)  ok")


if __name__ == "__main__":  # run as a script, this file runs the notebook's sanity checks
    check_blocks()
    check_resnet()
