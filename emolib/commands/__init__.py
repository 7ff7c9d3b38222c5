"""The ``emolib`` command (``python -m emolib``): parse the command line, run one subcommand.

Every subcommand's arguments are declared in :mod:`emolib.commands.parser`; its argument handling and
printing are ``run(args) -> int`` in ``emolib.commands.<name>``, imported only when that subcommand
runs, so start-up stays fast (no Keras or TensorFlow import for ``--help`` or ``data``). The library
functions they call take explicit parameters. :func:`main` is the one place where a failure becomes a
one-line message and exit status 2.
"""

from __future__ import annotations

import errno
import importlib
import sys

from emolib import backend, install
from emolib.commands.parser import build_parser

#: the subcommands: each is ``run(args)`` in the module ``emolib.commands.<name>``
COMMANDS = ("data", "train", "evaluate", "adjust", "calibrate", "average", "ensemble", "export", "predict",
            "video", "experiments", "serve", "doctor", "backend", "dashboard")
#: The subcommands a light install runs (``pip install emolib``, see :mod:`emolib.install`); the others
#: need the full install.
LIGHT_COMMANDS = ("predict", "serve", "doctor", "backend")
#: how a command goes on from what it wrote before a failure
RESUME_HINTS = {"train": "with --resume RUN_DIR: it goes on from the last checkpoint",
                "video": "with --resume: it goes on after the rows already written",
                "predict": "the images already in --out are skipped",
                "experiments": "finished runs are skipped, the others resume"}


def _disk_full(error: BaseException) -> bool:
    """True when ``error`` (or one it came from) is a full disk or quota (ENOSPC, EDQUOT), as libraries
    that wrap OSError (h5py, Keras) also say it."""
    while error is not None:
        if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Run ``emolib ARGV``; its exit status (2 with a one-line message for a refused input or step)."""
    args = build_parser().parse_args(argv)
    try:
        if args.command not in LIGHT_COMMANDS:
            install.require_full_install("this command")
        command = importlib.import_module(f"{__name__}.{args.command}")
        return int(command.run(args) or 0)
    except (ValueError, OSError, RuntimeError) as error:  # bad input, files, a refused step: one line
        print(f"emolib {args.command}: error: {error}", file=sys.stderr)
        if _disk_full(error):
            print(f"emolib {args.command}: the disk is full. What was written before is intact: free some "
                  f"space, then run the same command again ({RESUME_HINTS.get(args.command, 'it goes on')})",
                  file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        if error.name not in backend.BACKEND_LIBRARIES.values():
            raise
        message = backend.missing_backend_message(*backend.configured_backend())
        print(f"emolib {args.command}: error: {message}", file=sys.stderr)
        return 1
