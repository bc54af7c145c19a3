"""The one exception type for user errors (bad flags, missing files, wrong shapes in user data).

Raised with a message that names what is wrong and how to fix it; the `lara` command prints it
as one line (no traceback) and exits with status 2. Library callers catch it like any error.
"""


class LaraUserError(Exception):
    """A problem with the user's input, not a bug: the message says what to do."""
