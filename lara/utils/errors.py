"""The one exception type for user errors (bad flags, missing files, wrong shapes in user data).

Raised with a message that names what is wrong and how to fix it; the `lara` command prints it
as one line (no traceback) and exits with status 2. Library callers catch it like any error.
"""


class LaraUserError(Exception):
    """A problem with the user's input, not a bug: the message says what to do."""


def run_main(main, *args) -> int:
    """Run `main(*args)` as a command: a LaraUserError prints one `error:` line (no traceback) and
    returns 2; Ctrl-C returns 130 with a note that finished work is kept. `lara` and the
    examples/ scripts use it."""
    import sys

    try:
        return main(*args)
    except LaraUserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished work is kept, re-run the same command to resume", file=sys.stderr)
        return 130
