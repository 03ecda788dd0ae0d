"""Rebuild, for optimizers: what a submission's function returned, as the sandboxed child described it in plain
data (export.make_optimizer), checked here and built again from torch.optim's own classes.

No optimizer object and no student code crosses into the grading process: only a class name from the allowlist
below, parameter indices, and options that the class's constructor takes, valued as numbers, flags or short lists
of numbers. Everything else in the description is refused or, for extra keys a parameter group may carry, ignored.
"""
import inspect
import math
import re
from dataclasses import dataclass

import torch

CLASSES = ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad", "Adadelta", "ASGD", "Rprop")
MAX_GROUPS = 100
MAX_OPTIONS = 100
MAX_PARAMETERS = 10_000


class OptimizerError(ValueError):
    """The description cannot become an optimizer; the message says why in a student's terms."""


@dataclass(frozen=True)
class Described:
    """An optimizer as plain data: its torch.optim class, and per parameter group the indices of the parameters it
    holds (-1: one that was not handed in) and the options its class takes."""
    name: str
    groups: tuple  # ((indices, {option: value}), ...)
    handed: int  # how many parameters the function was given

    def option(self, key, group=0):
        return self.groups[group][1].get(key) if group < len(self.groups) else None

    def build(self, parameters) -> torch.optim.Optimizer:
        """torch.optim's own optimizer over `parameters` (the grader's tensors, one per index), as described."""
        groups = [{"params": [parameters[i] for i in indices if i >= 0], **options} for indices, options in self.groups]
        try:  # the first group's options as the defaults too: torch validates its constructor's arguments only
            return getattr(torch.optim, self.name)(groups, **self.groups[0][1])
        except (ValueError, TypeError, RuntimeError, KeyError) as exc:
            raise OptimizerError(f"torch.optim.{self.name} refuses what was described: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _accepted(name) -> set:
    """The options torch.optim.`name`'s constructor takes (besides the parameters)."""
    return set(inspect.signature(getattr(torch.optim, name).__init__).parameters) - {"self", "params"}


def _value(key, value):
    finite = lambda v: not isinstance(v, float) or math.isfinite(v)  # noqa: E731
    if value is None or isinstance(value, bool) or (isinstance(value, (int, float)) and finite(value)):
        return value
    if isinstance(value, list) and len(value) <= 8 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and finite(v) for v in value):
        return tuple(value)
    raise OptimizerError(f"its option {key} is not a finite number, a flag or a short list of numbers")


def described(data, handed: int) -> Described:
    """The Described optimizer from a child's JSON (`handed`: how many parameters the grader asked it to pass on);
    OptimizerError for anything that is not a plain description of one of torch.optim's allowlisted classes."""
    if not isinstance(data, dict):
        raise OptimizerError("its description is not an object")
    name, module, groups = data.get("class"), data.get("module"), data.get("groups")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w{0,60}", name):
        raise OptimizerError("it did not return an optimizer class the grader can name")
    if name not in CLASSES:
        raise OptimizerError(f"it returned a {name}, which the grader does not build: return one of torch.optim's "
                             f"classes ({', '.join(CLASSES)})")
    if not isinstance(module, str) or not module.startswith("torch.optim"):
        raise OptimizerError(f"it returned a class of its own named {name}, not torch.optim.{name}: return "
                             f"torch.optim.{name}(...) itself")
    if not isinstance(groups, list) or not 0 < len(groups) <= MAX_GROUPS:
        raise OptimizerError(f"it describes {'no' if not groups else 'too many'} parameter groups")
    accepted, read = _accepted(name), []
    for group in groups:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list) \
                or not isinstance(group.get("options"), dict) or len(group["options"]) > MAX_OPTIONS \
                or len(group["params"]) > MAX_PARAMETERS:
            raise OptimizerError("a parameter group is not a list of parameters with a table of options")
        indices = group["params"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and -1 <= i < handed for i in indices):
            raise OptimizerError("a parameter group names parameters that were not handed in")
        options = {k: _value(k, v) for k, v in group["options"].items() if k in accepted}
        read.append((tuple(indices), options))
    return Described(name, tuple(read), handed)
