"""`lara train` with the toy policy/dataset registered: the entry point of the subprocess tests
(SIGKILL resume, `accelerate launch` DDP)."""

import logging
import sys

import curriculum_toy  # noqa: F401  (registers the toy policy, dataset, preset; this folder is sys.path[0])

from lara.scripts.train_cli import main
from lara.utils.errors import LaraUserError

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    try:
        raise SystemExit(main(sys.argv[1:]))
    except LaraUserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
