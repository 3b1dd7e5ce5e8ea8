"""Seeds the `metadata` fuzz target (rust/fuzz) with every metadata document of a corpus.

Each seed is the target's input: one byte for the format (0: a v3 `zarr.json`, 1: a v2
`.zarray`), then the document. Usage: fuzz_seeds.py CORPUS_DIR SEED_DIR.
"""

import hashlib
import sys
from pathlib import Path


def main() -> None:
    corpus, seeds = Path(sys.argv[1]), Path(sys.argv[2])
    seeds.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, format_byte in (("zarr.json", b"\x00"), (".zarray", b"\x01")):
        for path in sorted(corpus.rglob(name)):
            seed = format_byte + path.read_bytes()
            (seeds / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
            count += 1
    print(f"{count} metadata documents from {corpus} seed {seeds}")


if __name__ == "__main__":
    main()
