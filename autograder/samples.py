"""Sample submissions for the demo and the tests: the reference, the untouched release, an honest variant and
realistic bugs, each made from the reference by exact text replacements (each must match exactly once).

They are written by `make release` under solutions/<assignment>/samples/ (instructor side: they contain the
solution), as .py files, and as notebooks for a few.
"""
import nbformat

from .notebooks import read

RESNET50_CIFAR10 = {
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
SAMPLES = {"resnet50_cifar10": RESNET50_CIFAR10}


def apply(text: str, replacements, name: str) -> str:
    for old, new in replacements:
        if text.count(old) != 1:
            raise ValueError(f"sample {name}: the text to replace occurs {text.count(old)} times, not once")
        text = text.replace(old, new)
    return text


def sample_files(assignment, reference_module: str, student_notebook: str, student_module: str) -> dict:
    """Every sample file, path -> text."""
    folder = assignment.source.parent / "samples"
    bugs = SAMPLES[assignment.name]
    files = {folder / "reference.py": reference_module, folder / "release.py": student_module,
             folder / "release_notebook.ipynb": student_notebook}
    for name, (what, replacements) in bugs.items():
        files[folder / f"{name}.py"] = f"# Sample submission: {what}.\n" + apply(reference_module, replacements, name)
    for name in AS_NOTEBOOKS:
        nb = read(assignment.source)
        if name in bugs:
            for cell in nb.cells:
                if cell.cell_type == "code" and "module" in cell.metadata.get("tags", []):
                    try:
                        cell.source = apply(cell.source, bugs[name][1], name)
                    except ValueError:
                        pass  # the replacement belongs to another cell
            if nbformat.writes(nb) == nbformat.writes(read(assignment.source)):
                raise ValueError(f"sample {name}: no cell of the notebook changed")
        files[folder / f"{name}_notebook.ipynb"] = nbformat.writes(nb) + "\n"
    return files
