"""The paper's CIFAR-10 ResNets (seed 003; He et al. 2016, Table 6): BasicBlock with option A and B shortcuts,
PlainBlock, ResNet and the builders resnet20 ... resnet110 and plain20 ... plain110, with the degradation experiment.
Hidden checks: checks.py. Samples: made from the reference by exact text replacements (each must match once).
"""
TITLE = "The paper's CIFAR-10 ResNets (ResNet-20 ... 110), option A and B shortcuts, and plain twins"
NOTEBOOK = "resnet_paper_cifar10.ipynb"
MODULE = "resnet_cifar.py"

SAMPLES = {
    # name: (what a student did, [(reference text, replacement)])
    "cat_zeros": ("honest variant: option A as a torch.cat with zeros after the input's channels", [
        ("self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::stride, ::stride],\n"
         "                                                            (0, 0, 0, 0, extra // 2, extra - extra // 2)))",
         "self.shortcut = LambdaLayer(lambda x: torch.cat(\n"
         "                    [x[:, :, ::stride, ::stride], torch.zeros_like(x[:, :extra, ::stride, ::stride])], 1))"),
    ]),
    "capitalised_builders": ("honest variant: the builders are called ResNet20 ... ResNet110, Plain20 ... Plain110",
                             [(f"def {kind}{depth}(", f"def {kind.capitalize().replace('Resnet', 'ResNet')}{depth}(")
                              for kind in ("resnet", "plain") for depth in (20, 32, 44, 56, 110)]),
    "option_b_default": ("resnet20() builds option B unless told otherwise (a projection, as in many public "
                         "reproductions)", [
        ('def resnet20(num_classes=10, option="A"):', 'def resnet20(num_classes=10, option="B"):'),
    ]),
    "option_b_unwritten": ("option A done, option B not yet: it raises", [
        ("            elif option == \"B\":\n                self.shortcut = nn.Sequential(\n"
         "                    nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),\n"
         "                    nn.BatchNorm2d(planes),\n                )\n",
         "            elif option == \"B\":\n                raise NotImplementedError(\"option B: not yet\")\n"),
    ]),
    "pad_wrong_dim": ("option A pads the width instead of the channels", [
        ("(0, 0, 0, 0, extra // 2, extra - extra // 2)", "(extra // 2, extra - extra // 2, 0, 0, 0, 0)"),
    ]),
    "stride_on_second_conv": ("the block's stride on the second 3x3 instead of the first", [
        ("self.conv1 = conv3x3(in_planes, planes, stride)\n        self.bn1 = nn.BatchNorm2d(planes)\n"
         "        self.conv2 = conv3x3(planes, planes)\n        self.bn2 = nn.BatchNorm2d(planes)\n"
         "        self.shortcut",
         "self.conv1 = conv3x3(in_planes, planes)\n        self.bn1 = nn.BatchNorm2d(planes)\n"
         "        self.conv2 = conv3x3(planes, planes, stride)\n        self.bn2 = nn.BatchNorm2d(planes)\n"
         "        self.shortcut"),
    ]),
    "no_bn2": ("no batch norm after the block's second conv", [
        ("        self.bn2 = nn.BatchNorm2d(planes)\n        self.shortcut", "        self.shortcut"),
        ("        out = self.bn2(self.conv2(out))\n        out = out + self.shortcut(x)",
         "        out = self.conv2(out)\n        out = out + self.shortcut(x)"),
    ]),
    "projection_everywhere": ("a 1x1 projection in every block, even where the shapes match", [
        ("        self.shortcut = nn.Sequential()\n        if stride != 1 or in_planes != planes:",
         "        self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, "
         "bias=False),\n                                      nn.BatchNorm2d(planes))\n"
         "        if stride != 1 or in_planes != planes:"),
    ]),
    "relu_before_add": ("ReLU before the addition, none after it", [
        ("        out = self.bn2(self.conv2(out))\n        out = out + self.shortcut(x)\n        return F.relu(out)",
         "        out = F.relu(self.bn2(self.conv2(out)))\n        return out + self.shortcut(x)"),
    ]),
    "resnet14": ("resnet20 built with n = 2: a ResNet-14", [
        ("return ResNet(BasicBlock, [3, 3, 3], num_classes, option)",
         "return ResNet(BasicBlock, [2, 2, 2], num_classes, option)"),
    ]),
    "avgpool_kernel_4": ("average pooling with kernel 4 (from an ImageNet-style file), leaving 2 x 2 maps", [
        ("out = F.adaptive_avg_pool2d(out, 1)", "out = F.avg_pool2d(out, 4)"),
    ]),
    "stage3_no_downsample": ("stage 3 does not downsample: its maps stay 16 x 16", [
        ("self.layer3 = self._make_layer(block, 64, num_blocks[2], 2, option)",
         "self.layer3 = self._make_layer(block, 64, num_blocks[2], 1, option)"),
    ]),
    "num_classes_ignored": ("the classifier always has 10 outputs", [
        ("self.linear = nn.Linear(64 * block.expansion, num_classes)",
         "self.linear = nn.Linear(64 * block.expansion, 10)"),
    ]),
}
AS_NOTEBOOKS = ["reference", "relu_before_add"]
