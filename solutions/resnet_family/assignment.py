"""The ResNet family (seed 002): BasicBlock and Bottleneck, one ResNet class for both, and the builders resnet18 …
resnet152, trained on CIFAR-10 and MNIST. Hidden checks: checks.py. Samples: made from the reference by exact text
replacements (each must match once).
"""
TITLE = "The ResNet family: ResNet-18 to ResNet-152 from one class, on CIFAR-10 and MNIST"
NOTEBOOK = "resnet_family.ipynb"
MODULE = "resnet_family.py"

CONV3X3 = ("def conv3x3(in_channels, out_channels, stride=1):\n"
           "    # 3x3 convolution, padding 1, no bias (batch norm follows): keeps H and W at stride 1, halves them at "
           "stride 2\n"
           "    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)\n")
PROJECTION_TEST = "        if stride != 1 or in_channels != channels * self.expansion:\n"
SAMPLES = {
    # name: (what a student did, [(reference text, replacement)])
    "stride_on_first_1x1": ("honest variant: the Bottleneck's stride on its first 1x1, as in the paper", [
        ("        self.conv1 = conv1x1(in_channels, channels)\n",
         "        self.conv1 = conv1x1(in_channels, channels, stride)\n"),
        ("        self.conv2 = conv3x3(channels, channels, stride)\n", "        self.conv2 = conv3x3(channels, channels)\n"),
    ]),
    "partial_helpers": ("honest variant: the convolutions made with functools.partial at module level, as a popular "
                        "tutorial writes them", [
        ("import torch\nimport torch.nn as nn\n", "from functools import partial\n\nimport torch\nimport torch.nn as nn\n"),
        (CONV3X3, "class Conv2dAuto(nn.Conv2d):\n"
                  "    # a convolution that pads itself to keep the size: padding = kernel_size // 2\n"
                  "    def __init__(self, *args, **kwargs):\n"
                  "        super().__init__(*args, **kwargs)\n"
                  "        self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)\n\n\n"
                  "conv3x3_auto = partial(Conv2dAuto, kernel_size=3, bias=False)\n\n\n"
                  "def conv3x3(in_channels, out_channels, stride=1):\n"
                  "    return conv3x3_auto(in_channels, out_channels, stride=stride)\n"),
    ]),
    "expansion_1_in_bottleneck": ("the Bottleneck's expansion left at 1, copied from BasicBlock", [
        ("class Bottleneck(nn.Module):\n    expansion = 4", "class Bottleneck(nn.Module):\n    expansion = 1"),
    ]),
    "resnet101_layers_of_50": ("resnet101 built with ResNet-50's layers [3, 4, 6, 3]", [
        ("return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels)",
         "return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels)"),
    ]),
    "resnet152_layers_mistyped": ("resnet152 with [3, 8, 23, 3], the 101-layer column's 23", [
        ("return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels)",
         "return ResNet(Bottleneck, [3, 8, 23, 3], num_classes, in_channels)"),
    ]),
    "resnet50_from_basic_blocks": ("resnet50 built from BasicBlocks: the builder's name lies", [
        ("return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels)",
         "return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_channels)"),
    ]),
    "in_channels_ignored": ("conv1 always takes 3 channels: in_channels is ignored, so MNIST breaks", [
        ("self.conv1 = nn.Conv2d(in_channels, 64,", "self.conv1 = nn.Conv2d(3, 64,"),
    ]),
    "projection_on_stride_only": ("a projection only where the stride is not 1: a block that changes the width "
                                  "alone cannot add", [
        ("        self.bn2 = nn.BatchNorm2d(channels)\n        self.downsample = None\n" + PROJECTION_TEST,
         "        self.bn2 = nn.BatchNorm2d(channels)\n        self.downsample = None\n        if stride != 1:\n"),
        ("        self.relu = nn.ReLU(inplace=True)\n        self.downsample = None\n" + PROJECTION_TEST,
         "        self.relu = nn.ReLU(inplace=True)\n        self.downsample = None\n        if stride != 1:\n"),
    ]),
    "no_stride_in_make_layer": ("_make_layer never passes the stride on: every block has stride 1", [
        ("            layers.append(block(self.inplanes, channels, s))",
         "            layers.append(block(self.inplanes, channels))"),
    ]),
    "fc_512_for_bottleneck": ("fc sized 512 whatever the block: a Bottleneck net's 2,048 features do not fit", [
        ("self.fc = nn.Linear(512 * block.expansion, num_classes)", "self.fc = nn.Linear(512, num_classes)"),
    ]),
    "no_maxpool": ("the stem's max pool is built but never used in forward", [
        ("x = self.maxpool(self.relu(self.bn1(self.conv1(x))))", "x = self.relu(self.bn1(self.conv1(x)))"),
    ]),
}
AS_NOTEBOOKS = ["reference", "resnet50_from_basic_blocks"]
REFERENCE_RUN = {"EPOCHS": 2, "TRAIN_SUBSET": 320, "TEST_SUBSET": 160, "BATCH_SIZE": 32}  # two epochs: the run checks that the loss falls
