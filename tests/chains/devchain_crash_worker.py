"""Mine on a development chain until killed, printing each block height once it is saved."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import coincurve
from exchange_devchain import DevChain, address_of


def main() -> None:
    node = DevChain(Path(sys.argv[1]))
    to = address_of(coincurve.PrivateKey(hashlib.sha256(b"crash").digest()).public_key.format())
    while True:
        node.faucet(to, 1)
        (block,) = node.mine()
        print(block.height, flush=True)


if __name__ == "__main__":
    main()
