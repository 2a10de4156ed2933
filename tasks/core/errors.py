"""User-facing errors: one line naming the bad input and the fix.

Raise ``UserError`` for anything a user can correct (missing file, unknown
recipe key, corrupt image...). The CLI prints ``error: <message>`` and exits
with code 2; no traceback is shown.
"""


class UserError(Exception):
    """A mistake in the user's input; the message names the input and the fix."""


def quote(value, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters: an error line quotes what it got, never all of it.

    Built with ``reprlib`` (a few items per level, a few levels), so even a huge
    or alias-expanded value costs microseconds."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple, short.maxset = 3, 6, 6, 6, 6
    short.maxstring = short.maxother = short.maxlong = limit
    text = short.repr(value)
    if isinstance(value, str) and len(value) > limit:
        text += f" ({len(value):,} chars)"
    return text if len(text) <= limit + 20 else text[:limit] + "..."


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first meaningful line of an exception's message (TensorFlow's ``{{function_node ...}}`` prefix dropped)."""
    import re

    text = re.sub(r"\{\{[^}]*\}\}\s*", "", getattr(err, "message", None) or str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(err).__name__)[:limit]


def clean_message(err: BaseException, limit: int = 200) -> str:
    """``first_line(err)``, where a ``KeyError`` gives its message without the quotes ``str`` adds.

    Example:
        >>> clean_message(KeyError("unknown model 'lenet6'; try lenet5"))
        "unknown model 'lenet6'; try lenet5"
    """
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        err = Exception(err.args[0])  # str(KeyError) is the repr of its message
    return first_line(err, limit)
