"""Flower's configuration: `celery -A tasks flower` loads ./flowerconfig.py before it listens.

That makes this the one place that can refuse to serve an open dashboard (Flower can revoke and
rate-limit tasks). Credentials come from FLOWER_BASIC_AUTH (`user:password`, several separated by
commas), which Flower itself reads from the environment, from `--basic-auth`, or from the file
FLOWER_BASIC_AUTH_FILE names (a compose secret). Without them Flower
starts only when explicitly told it is a local demo (FLOWER_UNAUTHENTICATED_DEMO=1), and then only
on loopback.

Flower serves /metrics (Prometheus) and /healthcheck without authentication whatever is set here,
so never publish its port beyond 127.0.0.1.

It also bounds Flower's memory: Flower keeps the tasks it has seen, 100,000 by default (a few
hundred MB at the pipeline's rates, reached after hours: memory that grows for hours looks like a
leak); here 10,000 unless FLOWER_MAX_TASKS or `--max_tasks` says otherwise.

Tornado executes this file and takes every global whose name is a Flower option, so helpers are
private (leading underscore) and the options set here are `basic_auth`, `max_tasks` (and
`address` in demo).
"""

import os
import sys

from tornado.options import options as _options

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_TRUE = {"1", "true", "yes", "on"}


def _refuse(reason: str) -> None:
    sys.stderr.write(f"flower: refusing to start: {reason}\n")
    raise SystemExit(2)


def _given() -> list[str]:
    """FLOWER_BASIC_AUTH / --basic-auth, or the content of FLOWER_BASIC_AUTH_FILE."""
    given = [p for p in (_options.basic_auth or []) if p and p.strip()]
    path = os.environ.get("FLOWER_BASIC_AUTH_FILE", "")
    if not path:
        return given
    if given:
        _refuse("FLOWER_BASIC_AUTH and FLOWER_BASIC_AUTH_FILE are both set: keep one")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip().split(",")
    except OSError as e:
        _refuse(f"FLOWER_BASIC_AUTH_FILE={path!r}: {e.strerror}")
    return []


def _credentials() -> list[str]:
    """The configured user:password pairs; an empty FLOWER_BASIC_AUTH= counts as none."""
    pairs = [p.strip() for p in _given() if p.strip()]
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not (sep and user and password):
            _refuse("FLOWER_BASIC_AUTH must be user:password (several separated by commas)")
    return pairs


_pairs = _credentials()
if _pairs:
    basic_auth = _pairs
elif _options.auth:
    pass  # OAuth (--auth) is configured instead: authenticated too.
elif os.environ.get("FLOWER_UNAUTHENTICATED_DEMO", "").strip().lower() in _TRUE:
    if _options.address and _options.address not in _LOOPBACK:
        _refuse(f"an unauthenticated demo listens on loopback only, not {_options.address}")
    basic_auth = []
    address = "127.0.0.1"
    sys.stderr.write(
        "flower: WARNING: local demo without authentication on 127.0.0.1 "
        "(FLOWER_UNAUTHENTICATED_DEMO=1)\n"
    )
else:
    _refuse(
        "no authentication configured. Set FLOWER_BASIC_AUTH=user:password (e.g. in .env), "
        "or FLOWER_UNAUTHENTICATED_DEMO=1 for a local demo on 127.0.0.1 only."
    )

# Read after FLOWER_* variables and before the command line: set only when the variable is not.
if not os.environ.get("FLOWER_MAX_TASKS"):
    max_tasks = 10_000
