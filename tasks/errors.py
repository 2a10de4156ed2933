"""User-facing errors: one line naming the bad input and the fix.

Raise ``UserError`` for anything a user can correct (missing file, unknown
recipe key, corrupt image...). The CLI prints ``error: <message>`` and exits
with code 2; no traceback is shown.
"""


class UserError(Exception):
    """A mistake in the user's input; the message names the input and the fix."""
