"""resnet50_skeleton.py: the graded code of resnet50_cifar10.ipynb.

Fill in the parts marked `fill in here`, here or in the notebook, and submit either file.
Keep every name and signature: the grader builds these classes by name.
`python resnet50_skeleton.py` runs the notebook's sanity checks.
"""
import torch
import torch.nn as nn


def conv1x1(in_channels, out_channels, stride, padding):
    # 1x1 convolution + batch norm + ReLU: changes the channel count; keeps H and W when stride is 1.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv3x3(in_channels, out_channels, stride, padding):
    # 3x3 convolution + batch norm + ReLU: with padding 1 and stride 1 it keeps H and W.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=padding),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, middle_channels, out_channels, downsample=False):
        super().__init__()
        self.downsample = downsample
        if self.downsample:
            # fill in here (20 points). Hint: use conv1x1 and conv3x3; only the first conv halves H and W.
            # self.layer = nn.Sequential(...): 1x1 (stride 2) -> 3x3 -> 1x1, in -> middle -> middle -> out
            raise NotImplementedError("fill in here: replace this line with your code")
            self.downsize = conv1x1(in_channels, out_channels, 2, 0)
        else:
            # fill in here (20 points). Hint: H and W must not change; mind the 3x3's padding.
            # self.layer = nn.Sequential(...): 1x1 -> 3x3 -> 1x1, all stride 1, in -> middle -> middle -> out
            raise NotImplementedError("fill in here: replace this line with your code")
            self.make_equal_channel = conv1x1(in_channels, out_channels, 1, 0)

    def forward(self, x):
        out = self.layer(x)
        shortcut = self.downsize(x) if self.downsample else self.make_equal_channel(x)
        return out + shortcut


def check_residual_block():
    x = torch.randn(2, 64, 8, 8)
    for downsample, expected in [(False, (2, 256, 8, 8)), (True, (2, 256, 4, 4))]:
        block = ResidualBlock(64, 64, 256, downsample=downsample)
        kernels = [m.kernel_size for m in block.layer.modules() if isinstance(m, nn.Conv2d)]
        assert kernels == [(1, 1), (3, 3), (1, 1)], (
            f"ResidualBlock(downsample={downsample}): self.layer's convolutions have kernels {kernels}; "
            "expected 1x1, 3x3, 1x1. Build it from conv1x1, conv3x3, conv1x1 in that order.")
        got = tuple(block(x).shape)
        if got[1] != expected[1]:
            raise AssertionError(
                f"ResidualBlock(64, 64, 256, downsample={downsample}) gave {got[1]} channels, expected 256. "
                "The channels go in -> middle -> middle -> out: check each conv's in/out arguments.")
        assert got == expected, (
            f"ResidualBlock(64, 64, 256, downsample={downsample}) turned a (2, 64, 8, 8) input into {got}, "
            f"expected {expected}. " + (
                "With downsample=True exactly one conv of self.layer has stride 2 (the first 1x1), and the 3x3 "
                "keeps padding 1." if downsample else
                "With downsample=False every stride is 1 and the 3x3 needs padding 1 to keep 8x8."))
        print(f"ResidualBlock(64, 64, 256, downsample={downsample}): {tuple(x.shape)} -> {got}  ok")


class ResNet50_layer4(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        # fill in here (25 points, with layer2, fc and avgpool): the stem, 32x32 in, 8x8 out.
        # Hint: the table's 7x7 conv with 64 filters and stride 2, with the padding that makes W_out 16.
        # self.layer1 = nn.Sequential(...): the 7x7 conv, BatchNorm2d, ReLU(inplace=True), the 3x3 max pool
        raise NotImplementedError("fill in here: replace this line with your code")
        # fill in here: three ResidualBlocks, middle 64; the last one halves H and W.
        # self.layer2 = nn.Sequential(...): 64 -> 256 channels, 8x8 -> 4x4
        raise NotImplementedError("fill in here: replace this line with your code")
        # fill in here (20 points): four ResidualBlocks, middle 128; the last one halves H and W.
        # self.layer3 = nn.Sequential(...): 256 -> 512 channels, 4x4 -> 2x2
        raise NotImplementedError("fill in here: replace this line with your code")
        # fill in here (20 points): six ResidualBlocks, middle 256; none of them downsamples.
        # self.layer4 = nn.Sequential(...): 512 -> 1024 channels, 2x2 stays 2x2
        raise NotImplementedError("fill in here: replace this line with your code")
        # fill in here: the average pool before the classifier, and the classifier.
        # self.avgpool = nn.AvgPool2d(...): 2x2, stride 1; self.fc = nn.Linear(...): 1024 -> num_classes
        raise NotImplementedError("fill in here: replace this line with your code")

        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x):
        out = self.layer1(x)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)
        out = self.fc(out)
        return out


STAGE_SHAPES = [  # (stage, expected output for a batch of 2 CIFAR images)
    ("layer1[0] (the 7x7 conv)", (2, 64, 16, 16)),
    ("layer1", (2, 64, 8, 8)),
    ("layer2", (2, 256, 4, 4)),
    ("layer3", (2, 512, 2, 2)),
    ("layer4", (2, 1024, 2, 2)),
    ("avgpool", (2, 1024, 1, 1)),
]
EXPECTED_PARAMETERS = 14_750_730


def check_resnet50_layer4():
    model = ResNet50_layer4(num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = tuple(model.layer1[0](x).shape)
        assert got == STAGE_SHAPES[0][1], (
            f"The 7x7 conv of layer1 gave {got}, expected {STAGE_SHAPES[0][1]}: use 3 input channels, 64 filters, "
            "stride 2 and padding 3 (W_out = (32 + 2*3 - 7) / 2 + 1 = 16).")
        out = x
        for stage, expected in STAGE_SHAPES[1:]:
            before, out = tuple(out.shape), getattr(model, stage)(out)
            assert tuple(out.shape) == expected, (
                f"{stage} turned {before} into {tuple(out.shape)}, expected {expected}. Compare its blocks with "
                "the table: each block's in_channels is the previous block's out_channels, and only the blocks "
                "marked there downsample.")
        logits = model(x)
    assert tuple(logits.shape) == (2, 10), (
        f"The model's output is {tuple(logits.shape)}, expected (2, 10): fc maps 1024 features to num_classes.")
    count = sum(p.numel() for p in model.parameters())
    assert count == EXPECTED_PARAMETERS, (
        f"The model has {count:,} parameters, expected {EXPECTED_PARAMETERS:,}: the shapes are right, so look at "
        "the widths inside the blocks (middle_channels) and at fc.")
    for stage, expected in STAGE_SHAPES:
        print(f"{stage:>24}: {expected[1:]}  ok")
    print(f"output {tuple(logits.shape)}, {count:,} parameters  ok")


if __name__ == "__main__":  # run as a script, this file runs the notebook's sanity checks
    check_residual_block()
    check_resnet50_layer4()
