"""The course's ResNet-50 "layer4" project (seeds 000 and 001): the bottleneck ResidualBlock and ResNet50_layer4,
beside a given VGG-16, on CIFAR-10. Hidden checks: checks.py. Samples: made from the reference by exact text
replacements (each must match once), as .py files, and as notebooks for AS_NOTEBOOKS.
"""
TITLE = 'ResNet-50 ("layer4") against VGG-16 on CIFAR-10'
NOTEBOOK = "resnet50_cifar10.ipynb"
MODULE = "resnet50_skeleton.py"

SAMPLES = {
    # name: (what a student did, [(reference text, replacement)])
    "stride_on_3x3": ("honest variant: the downsampling stride on the 3x3, as torchvision does", [
        ("conv1x1(in_channels, middle_channels, stride=2, padding=0),\n"
         "                conv3x3(middle_channels, middle_channels, stride=1, padding=1),",
         "conv1x1(in_channels, middle_channels, stride=1, padding=0),\n"
         "                conv3x3(middle_channels, middle_channels, stride=2, padding=1),"),
    ]),
    "no_stride_downsample": ("the downsampling block's first 1x1 keeps stride 1", [
        ("conv1x1(in_channels, middle_channels, stride=2, padding=0)",
         "conv1x1(in_channels, middle_channels, stride=1, padding=0)"),
    ]),
    "wrong_middle_width": ("the plain block widens at the 3x3: middle -> out -> out", [
        ("conv3x3(middle_channels, middle_channels, stride=1, padding=1),\n"
         "                conv1x1(middle_channels, out_channels, stride=1, padding=0),\n"
         "            )\n            ### END SOLUTION\n            self.make_equal_channel",
         "conv3x3(middle_channels, out_channels, stride=1, padding=1),\n"
         "                conv1x1(out_channels, out_channels, stride=1, padding=0),\n"
         "            )\n            ### END SOLUTION\n            self.make_equal_channel"),
    ]),
    "no_residual_add": ("forward returns the main path only (a plain stack)", [
        ("        return out + shortcut", "        return out"),
    ]),
    "wrong_num_classes": ("fc has 100 outputs whatever num_classes says", [
        ("nn.Linear(1024, num_classes)", "nn.Linear(1024, 100)"),
    ]),
    "wrong_avgpool": ("avgpool keeps the 2x2 map (kernel 1)", [
        ("nn.AvgPool2d(kernel_size=2, stride=1)", "nn.AvgPool2d(kernel_size=1, stride=1)"),
    ]),
    "missing_block": ("layer3 has three blocks instead of four", [
        ("            ResidualBlock(in_channels=512, middle_channels=128, out_channels=512, downsample=False),\n"
         "            ResidualBlock(in_channels=512, middle_channels=128, out_channels=512, downsample=False),\n",
         "            ResidualBlock(in_channels=512, middle_channels=128, out_channels=512, downsample=False),\n"),
    ]),
    "detached_features": ("the features are detached before fc, so nothing but fc can learn", [
        ("        out = out.view(out.size(0), -1)\n", "        out = out.view(out.size(0), -1).detach()\n"),
    ]),
}
AS_NOTEBOOKS = ["missing_block", "reference"]
