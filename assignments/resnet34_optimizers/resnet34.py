"""resnet34.py: the graded code of resnet34_optimizers.ipynb.

Fill in the parts marked `fill in here`, here or in the notebook, and submit either file.
Keep every name and signature: the grader builds these classes by name.
`python resnet34.py` runs the notebook's sanity checks.
"""
import torch
import torch.nn as nn


def conv3x3(in_channels, out_channels, stride=1):
    # 3x3 convolution, padding 1, no bias (batch norm follows): keeps H and W at stride 1, halves them at stride 2
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    # 1x1 convolution, no bias: the projection shortcut
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1  # output channels = out_channels * expansion

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        # fill in here (15 points): the main path, and a projection only where the shapes change.
        # conv1, bn1: conv3x3 with the stride, in_channels -> out_channels, then nn.BatchNorm2d
        # relu: nn.ReLU(inplace=True)
        # conv2, bn2: conv3x3 with stride 1, out_channels -> out_channels, then nn.BatchNorm2d
        # downsample: None where stride is 1 and the channels stay the same; else nn.Sequential of conv1x1 (with
        # the stride) and nn.BatchNorm2d
        # self.conv1 = ...; self.bn1 = ...; self.relu = ...; self.conv2 = ...; self.bn2 = ...; self.downsample = ...
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here (10 points): conv1 -> bn1 -> ReLU -> conv2 -> bn2, add the shortcut (x itself, or
        # self.downsample(x) when there is one), then ReLU
        # return the result
        raise NotImplementedError("fill in here: replace this line with your code")


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def first_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_basic_block():
    x = torch.randn(2, 64, 16, 16)
    same = 2 * (64 * 64 * 9) + 2 * (2 * 64)  # two 3x3 convs 64 -> 64 and two batch norms (weight and bias each)
    main = 64 * 128 * 9 + 128 * 128 * 9 + 2 * (2 * 128)  # 3x3 convs 64 -> 128 and 128 -> 128, two batch norms
    projection = 64 * 128 + 2 * 128  # 1x1 conv 64 -> 128 and its batch norm: 8,448, 3.7 % of the block
    for out_channels, stride, shape, params in [
            (64, 1, (2, 64, 16, 16), same),
            (128, 2, (2, 128, 8, 8), main + projection),
            (128, 1, (2, 128, 16, 16), main + projection)]:
        block = BasicBlock(64, out_channels, stride)
        call = f"BasicBlock(64, {out_channels}, stride={stride})"
        needs_projection = stride != 1 or out_channels != 64
        try:
            got = tuple(block(x).shape)
        except RuntimeError as error:
            if type(error) is not RuntimeError:  # only torch's shape errors get a hint; any other error as it is
                raise
            raise AssertionError(
                f"{call} failed on a {tuple(x.shape)} input ({first_line(error)}). Check the channels (conv1: "
                "in_channels -> out_channels, conv2: out_channels -> out_channels, each batch norm as wide as its "
                "conv) and the shortcut: it must give the main path's shape, so it needs a projection (conv1x1 with "
                "the stride, then BatchNorm2d) wherever the stride is not 1 or the channels change.") from error
        assert got == shape, (
            f"{call} turned a {tuple(x.shape)} input into {got}, expected {shape}. The stride goes on conv1 only, "
            "both 3x3 convs have padding 1, and the output has out_channels channels.")
        count = count_parameters(block)
        assert count == params, (
            f"{call} has {count:,} parameters, expected {params:,}: "
            + (f"the main path's {main:,} and the projection's {projection:,} (a 1x1 conv without bias, with the "
               "stride, and a BatchNorm2d)." if needs_projection else
               "two 3x3 convs without bias and two batch norms. Stride 1 and unchanged channels: the shortcut is "
               "the identity (no downsample), with no parameters."))
        shortcut = f"projection {projection:,}" if needs_projection else "identity shortcut"
        print(f"{call}: {tuple(x.shape)} -> {got}, {count:,} parameters ({shortcut})  ok")


class ResNet34(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.in_channels = 64
        # fill in here (25 points, with _make_layer): the stem, the four stages, the pooling and the classifier.
        # conv1: nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False); bn1: nn.BatchNorm2d(64);
        # relu: nn.ReLU(inplace=True); maxpool: nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        # layer1 ... layer4: self._make_layer(out_channels, blocks, stride) with the 34-layer column's
        # [3, 4, 6, 3] blocks of 64, 128, 256, 512 channels and strides 1, 2, 2, 2
        # avgpool: nn.AdaptiveAvgPool2d(1); fc: nn.Linear(512 * BasicBlock.expansion, num_classes)
        # the stem: self.conv1 = …; self.bn1 = …; self.relu = …; self.maxpool = …
        raise NotImplementedError("fill in here: replace this line with your code")
        # self.layer1 = …; self.layer2 = …; self.layer3 = …; self.layer4 = …; self.avgpool = …; self.fc = …
        raise NotImplementedError("fill in here: replace this line with your code")

    def _make_layer(self, out_channels, blocks, stride):
        # fill in here: `blocks` BasicBlocks, only the first with `stride`, returned as one nn.Sequential;
        # after each block, self.in_channels = … (that block's output channels)
        raise NotImplementedError("fill in here: replace this line with your code")

    def forward(self, x):
        # fill in here (15 points): conv1 -> bn1 -> ReLU -> maxpool -> layer1 ... layer4 -> avgpool -> flatten to
        # (N, 512) -> fc
        # return the logits
        raise NotImplementedError("fill in here: replace this line with your code")


RESNET34_PARAMETERS = 21_289_802  # at 10 classes (21,797,672 at ImageNet's 1,000)
STAGE_SHAPES = {  # input size: the shape after the stem and after each stage, for a batch of two
    32: [("stem", (2, 64, 8, 8)), ("layer1", (2, 64, 8, 8)), ("layer2", (2, 128, 4, 4)),
         ("layer3", (2, 256, 2, 2)), ("layer4", (2, 512, 1, 1))],
    128: [("stem", (2, 64, 32, 32)), ("layer1", (2, 64, 32, 32)), ("layer2", (2, 128, 16, 16)),
          ("layer3", (2, 256, 8, 8)), ("layer4", (2, 512, 4, 4))],
}
STAGES = [("layer1", 64, 64, 3), ("layer2", 64, 128, 4), ("layer3", 128, 256, 6), ("layer4", 256, 512, 3)]


def block_parameters(in_channels, out_channels):
    # One BasicBlock: two 3x3 convs and two batch norms, plus a projection (1x1 conv and batch norm) where the
    # channels change (in ResNet-34 the stride changes at the same blocks).
    count = 9 * in_channels * out_channels + 9 * out_channels * out_channels + 2 * (2 * out_channels)
    return count + (in_channels * out_channels + 2 * out_channels if in_channels != out_channels else 0)


def check_resnet34():
    net = ResNet34()
    stages = {"stem": lambda t: net.maxpool(net.relu(net.bn1(net.conv1(t)))), "layer1": net.layer1,
              "layer2": net.layer2, "layer3": net.layer3, "layer4": net.layer4}
    for size, shapes in STAGE_SHAPES.items():
        out = torch.randn(2, 3, size, size)
        for name, expected in shapes:
            out = stages[name](out)
            assert tuple(out.shape) == expected, (
                f"after {name} a batch of two {size}x{size} images has shape {tuple(out.shape)}, expected "
                f"{expected}: see the table of section 1 (the stem: 7x7 conv with stride 2, then 3x3 max pool with "
                "stride 2; in each stage only the first block has a stride: 1 in layer1, 2 in layer2 to layer4)")
            print(f"{size}x{size} input, after {name}: {tuple(out.shape)}  ok")
        try:
            logits = net(torch.randn(2, 3, size, size))
        except RuntimeError as error:
            if type(error) is not RuntimeError:  # only torch's shape errors get a hint; any other error as it is
                raise
            raise AssertionError(
                f"ResNet34() failed on a batch of two {size}x{size} images ({first_line(error)}). After layer4 the "
                "pooling must turn a map of any size into 1x1 (nn.AdaptiveAvgPool2d(1)); then flatten to (N, 512) "
                "for fc.") from error
        assert tuple(logits.shape) == (2, 10), (
            f"ResNet34() gave logits of shape {tuple(logits.shape)} for a batch of two {size}x{size} images, "
            "expected (2, 10): flatten the pooled (N, 512, 1, 1) to (N, 512), then fc")
        print(f"{size}x{size} input, output: {tuple(logits.shape)}  ok")

    expected = {"stem": 3 * 64 * 7 * 7 + 2 * 64, "fc": 512 * 10 + 10}
    hints = {"stem": "conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False), bn1 = "
                     "nn.BatchNorm2d(64)", "fc": "fc = nn.Linear(512, num_classes)"}
    for name, in_channels, out_channels, n in STAGES:
        expected[name] = block_parameters(in_channels, out_channels) + (n - 1) * block_parameters(out_channels,
                                                                                                 out_channels)
        hints[name] = (f"{n} BasicBlocks of {out_channels} channels, "
                       + (f"a projection in the first one only ({in_channels} -> {out_channels})"
                          if in_channels != out_channels else "no projection anywhere"))
    got = {"stem": count_parameters(net.conv1) + count_parameters(net.bn1), "fc": count_parameters(net.fc)}
    got.update({name: count_parameters(getattr(net, name)) for name, *_ in STAGES})
    for name in ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]:
        assert got[name] == expected[name], (
            f"{name} has {got[name]:,} parameters, expected {expected[name]:,}: {hints[name]}")
    print("parameters: " + ", ".join(f"{name} {got[name]:,}" for name in ["stem", "layer1", "layer2", "layer3",
                                                                          "layer4", "fc"]) + "  ok")
    total = count_parameters(net)
    assert total == RESNET34_PARAMETERS, (
        f"ResNet34() has {total:,} parameters, expected {RESNET34_PARAMETERS:,}: every parameter belongs in conv1, "
        "bn1, layer1 ... layer4 or fc")
    print(f"ResNet34(): {total:,} parameters  ok")
    logits = ResNet34(num_classes=7)(torch.randn(2, 3, 32, 32))
    assert tuple(logits.shape) == (2, 7), (
        f"ResNet34(num_classes=7) gave logits of shape {tuple(logits.shape)}, expected (2, 7): fc must have "
        "num_classes outputs")
    print(f"ResNet34(num_classes=7): output {tuple(logits.shape)}  ok")


WEIGHT_DECAY = 5e-4  # the same L2 penalty for all three optimizers


def make_optimizer(name, parameters, lr):
    # fill in here (20 points): "sgd": torch.optim.SGD with momentum 0.9; "adam": torch.optim.Adam (its default
    # betas); "sgd_m095": torch.optim.SGD with momentum 0.95. Each with learning rate lr and
    # weight_decay=WEIGHT_DECAY; any other name raises ValueError.
    # return the optimizer
    raise NotImplementedError("fill in here: replace this line with your code")


def check_make_optimizer():
    parameters = list(nn.Linear(3, 2).parameters())
    for name, kind, momentum in [("sgd", torch.optim.SGD, 0.9), ("adam", torch.optim.Adam, None),
                                 ("sgd_m095", torch.optim.SGD, 0.95)]:
        lrs = (0.1, 0.003)
        for lr in lrs:
            optimizer = make_optimizer(name, parameters, lr)
            call = f"make_optimizer({name!r}, parameters, lr={lr})"
            assert type(optimizer) is kind, (
                f"{call} returned {type(optimizer).__name__}, expected torch.optim.{kind.__name__}")
            group = optimizer.param_groups[0]
            assert len(optimizer.param_groups) == 1 and len(group["params"]) == len(parameters), (
                f"{call} does not optimize the parameters it was given: pass `parameters` on to the optimizer")
            assert group["lr"] == lr, (
                f"{call} has learning rate {group['lr']}, expected {lr}: pass lr on, do not fix it")
            assert group["weight_decay"] == WEIGHT_DECAY, (
                f"{call} has weight decay {group['weight_decay']}, expected WEIGHT_DECAY = {WEIGHT_DECAY}")
            if momentum is None:
                assert tuple(group["betas"]) == (0.9, 0.999), (
                    f"{call} has betas {group['betas']}, expected Adam's defaults (0.9, 0.999)")
            else:
                assert group["momentum"] == momentum, (
                    f"{call} has momentum {group['momentum']}, expected {momentum}")
        setting = "betas (0.9, 0.999)" if momentum is None else f"momentum {momentum}"
        print(f"make_optimizer({name!r}, ...): torch.optim.{kind.__name__}, {setting}, weight decay "
              f"{WEIGHT_DECAY:g}, lr {lrs[0]:g} and {lrs[1]:g} as given  ok")
    try:
        make_optimizer("rmsprop", parameters, 0.01)
    except ValueError:
        print("make_optimizer('rmsprop', ...): ValueError  ok")
    else:
        raise AssertionError("make_optimizer('rmsprop', parameters, 0.01) returned an optimizer: a name other than "
                             "'sgd', 'adam' or 'sgd_m095' must raise ValueError")


if __name__ == "__main__":  # run as a script, this file runs the notebook's sanity checks
    check_basic_block()
    check_resnet34()
    check_make_optimizer()
