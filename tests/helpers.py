import importlib.util


def import_file(path):
    """Import a .py file under a fresh name (the kit's own reference and release modules, never a submission)."""
    spec = importlib.util.spec_from_file_location(path.stem + "_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
