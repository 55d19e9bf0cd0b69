"""`python -m bookstore ...`: the operator CLI."""

import contextlib
import logging
import os
import sys

from bookstore.cli import app
from bookstore.config import ConfigError


def main() -> None:
    """Run the command, then leave without the interpreter's exit handlers: pymongo's joins its
    (daemon) monitor threads, which wake every 0.5 s, so every command that read MongoDB spent
    ~0.45 s after it finished. A command returns only once its work is done and confirmed
    (Kafka acknowledged, offsets committed, stores written), so nothing is pending then."""
    try:
        app()
        code = 0
    except ConfigError as exc:  # a user's mistake: one line, never a traceback
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    logging.shutdown()
    with contextlib.suppress(OSError, ValueError):  # a reader that went away (`| head`)
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
