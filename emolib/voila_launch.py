"""``python -m emolib.voila_launch ARGS``: Voilà (``voila ARGS``), safe against legacy websocket clients.

Voilà 0.5 reads the header of every binary frame it sends on a kernel websocket as the ``v1`` protocol
(``v1.kernel.websocket.jupyter.org``, what JupyterLab's and Voilà's pages speak). A client on the
legacy protocol (no subprotocol: older tools, scripts) gets binary frames of another layout as soon as
a widget message carries buffers (an image); their first 8 bytes, read as v1's offset count, make a
list of ~10^18 offsets: the server spins and its memory grows by tens of MB a second until the machine
dies (seen here: 15 GB in 10 minutes). :func:`read_v1_header` reads only frames that can be v1.
"""

from __future__ import annotations

import sys

from voila.tornado import kernel_websocket_handler

_read_header = kernel_websocket_handler.read_header_from_binary_message


def read_v1_header(ws_msg: bytes) -> dict | None:
    """The header of a v1-protocol frame; None for a frame whose offset count cannot be v1's."""
    # v1: the count, then `count` 8-byte offsets (channel, header, parent, metadata, content, buffers…)
    count = int.from_bytes(ws_msg[:8], "little")
    return _read_header(ws_msg) if 3 <= count < len(ws_msg) // 8 else None


def main(argv: list[str] | None = None) -> None:
    """Run Voilà with ``argv`` (default: this process's arguments) and the safe header reader."""
    from voila.app import main as voila_main

    kernel_websocket_handler.read_header_from_binary_message = read_v1_header
    voila_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
