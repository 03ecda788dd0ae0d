"""ResNet-34 from BasicBlocks and an optimizer study (seed 004): BasicBlock with a projection only where shapes
change, ResNet34 with the ImageNet stem, and make_optimizer ("sgd", "adam", "sgd_m095"), graded as plain data.
Hidden checks: checks.py. Samples: made from the reference by exact text replacements (each must match once).
"""
TITLE = "ResNet-34 from BasicBlocks, and an optimizer study (SGD, Adam, SGD momentum 0.95)"
NOTEBOOK = "resnet34_optimizers.ipynb"
MODULE = "resnet34.py"

PROJECTION = ("        self.downsample = None\n"
              "        if stride != 1 or in_channels != out_channels * self.expansion:\n"
              "            self.downsample = nn.Sequential(\n"
              "                conv1x1(in_channels, out_channels * self.expansion, stride),\n"
              "                nn.BatchNorm2d(out_channels * self.expansion),\n"
              "            )\n")
SGD = "return torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=WEIGHT_DECAY)"
SAMPLES = {
    # name: (what a student did, [(reference text, replacement)])
    "shortcut_always_called": ("honest variant: the identity as an empty nn.Sequential, always called "
                               "(as many public ResNets write it)", [
        (PROJECTION, PROJECTION.replace("self.downsample = None", "self.downsample = nn.Sequential()")),
        ("identity = x if self.downsample is None else self.downsample(x)", "identity = self.downsample(x)"),
    ]),
    "optimizer_options_spelled_out": ("honest variant: make_optimizer spells out SGD's and Adam's other "
                                      "options at their defaults", [
        (SGD, "return torch.optim.SGD(parameters, lr=lr, momentum=0.9, dampening=0, "
              "weight_decay=WEIGHT_DECAY, nesterov=False, foreach=False)"),
        ("return torch.optim.Adam(parameters, lr=lr, weight_decay=WEIGHT_DECAY)",
         "return torch.optim.Adam(parameters, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY, "
         "amsgrad=False)"),
    ]),
    "projection_everywhere": ("a 1x1 projection in every block, even where the shapes match", [
        (PROJECTION, "        self.downsample = nn.Sequential(\n"
                     "            conv1x1(in_channels, out_channels * self.expansion, stride),\n"
                     "            nn.BatchNorm2d(out_channels * self.expansion),\n"
                     "        )\n"),
    ]),
    "projection_on_stride_only": ("a projection only where the stride is not 1: a block that changes the "
                                  "channels alone cannot add", [
        ("if stride != 1 or in_channels != out_channels * self.expansion:", "if stride != 1:"),
    ]),
    "stride_on_second_conv": ("the block's stride on the second 3x3 instead of the first", [
        ("self.conv1 = conv3x3(in_channels, out_channels, stride)",
         "self.conv1 = conv3x3(in_channels, out_channels)"),
        ("self.conv2 = conv3x3(out_channels, out_channels)", "self.conv2 = conv3x3(out_channels, out_channels, "
                                                             "stride)"),
    ]),
    "no_relu_after_add": ("the ReLU after the addition is missing", [
        ("        out += identity\n        return self.relu(out)", "        out += identity\n        return out"),
    ]),
    "blocks_mistyped": ("the 34-layer column mistyped as [3, 6, 4, 3]", [
        ("blocks = [3, 4, 6, 3]", "blocks = [3, 6, 4, 3]"),
    ]),
    "avgpool_7": ("nn.AvgPool2d(7) from an ImageNet recipe: it only fits 224 x 224 inputs", [
        ("self.avgpool = nn.AdaptiveAvgPool2d(1)", "self.avgpool = nn.AvgPool2d(7)"),
    ]),
    "adam_for_sgd": ('make_optimizer("sgd") returns Adam', [
        (SGD, "return torch.optim.Adam(parameters, lr=lr, weight_decay=WEIGHT_DECAY)"),
    ]),
    "momentum_09_for_m095": ('make_optimizer("sgd_m095") keeps momentum 0.9', [
        ("momentum=0.95", "momentum=0.9"),
    ]),
    "lr_fixed": ("make_optimizer ignores lr: SGD always at 0.01, the seed's value", [
        (SGD, SGD.replace("lr=lr", "lr=0.01")),
        ("return torch.optim.SGD(parameters, lr=lr, momentum=0.95", "return torch.optim.SGD(parameters, lr=0.01, "
                                                                   "momentum=0.95"),
    ]),
}
AS_NOTEBOOKS = ["reference", "no_relu_after_add"]
REFERENCE_RUN = {"EPOCHS": 2, "TRAIN_SUBSET": 1000, "TEST_SUBSET": 500, "BATCH_SIZE": 32}
