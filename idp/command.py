"""The ``idp`` command. prometheus-client reads ``PROMETHEUS_MULTIPROC_DIR`` once, when it is
imported, and keeps files there from then on, so the variable is settled here, before
:mod:`idp.cli` (and with it the metrics) is imported.

Only ``idp serve`` shares its metrics through that directory. Any other command (``idp keys
rotate`` run inside a pod, say) has nothing to add to the service's numbers, so it leaves the
directory alone instead of leaving files of its own behind. A directory that is not there
stops ``idp serve`` with one line naming the variable.
"""

from __future__ import annotations

import os
import sys

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def main() -> None:
    directory = os.environ.get(MULTIPROC_ENV)
    if directory is not None:
        if sys.argv[1:2] != ["serve"]:
            del os.environ[MULTIPROC_ENV]
        elif not os.path.isdir(directory):
            sys.exit(f"Error: {MULTIPROC_ENV}: {directory!r} is not a directory")
    from idp.cli import main as cli

    cli()
