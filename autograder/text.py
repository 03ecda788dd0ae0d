"""Text a child process wrote, made fit to show a student: bounded, plain, and free of the grading machine's paths.

Whatever the sandboxed child writes (an error message, a note) could be crafted: a forged heading, a secret it read,
a flood. It reaches the feedback only through `plain`, and the feedback shows it as quoted code (`fenced`), apart
from the grader's own words.
"""
import re
import unicodedata

_GRADER_PATHS = re.compile(r"(/tmp/autograde-[^\s'\"]*|/tmp/pytest-of-[^\s'\"]*|/sandbox/(w_\w+/)?|/opt/site/\d+/)")


def plain(text, limit: int, hide=()) -> str:
    """`text` as at most `limit` printable characters (newlines and tabs kept), with the grader's own paths in
    `hide` and its scratch paths replaced by "…"."""
    text = str(text)[:limit * 4]
    for path in sorted((str(p) for p in hide if str(p) not in ("", "/", ".")), key=len, reverse=True):
        text = text.replace(path.rstrip("/") + "/", "").replace(path, "…")
    text = _GRADER_PATHS.sub("", text)
    text = "".join(c if c in "\n\t" or unicodedata.category(c)[0] not in "CZ" or c == " " else " " for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def fenced(text: str) -> str:
    """A markdown code block holding `text` whatever it contains: the fence is longer than any backtick run."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def code_span(text: str) -> str:
    """An inline markdown code span holding `text` (a file name, say) as plain text: control characters and line
    breaks become "?", and the backticks around it outnumber any run inside."""
    text = re.sub(r"[\x00-\x1f\x7f]", "?", str(text))
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks} {text} {ticks}" if text.startswith("`") or text.endswith("`") else f"{ticks}{text}{ticks}"
