"""``emolib doctor [--json]``: backend, devices, versions, data and model found."""

from __future__ import annotations

import json

from emolib import doctor


def run(args) -> int:
    """Print the report (``--json``: as one JSON object); exit status 1 when emolib cannot work here."""
    info = doctor.report()
    print(json.dumps(info, indent=2) if args.json else doctor.format_report(info))
    return 1 if info["errors"] else 0
