"""Seeds the fuzz targets (rust/fuzz) that take metadata from their input, from a corpus.

- `metadata`: every metadata document, as one byte for the format (0: a v3 `zarr.json`,
  1: a v2 `.zarray`) and then the document.
- `hierarchy`: every group, as a flags byte of 0 (the group at the root), then its store
  entries separated by 0xFF, each a key relative to the group, a 0 byte and the value: every
  metadata document below the group, and the chunks small enough to keep the seed short.

Usage: fuzz_seeds.py CORPUS_DIR SEED_ROOT (seeds go to SEED_ROOT/metadata and
SEED_ROOT/hierarchy).
"""

import hashlib
import json
import sys
from pathlib import Path

METADATA = {"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"}
SMALL_CHUNK = 512
MAX_SEED = 65536


def save(directory: Path, seed: bytes) -> None:
    (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


def is_group(directory: Path) -> bool:
    if (directory / ".zgroup").is_file():
        return True
    document = directory / "zarr.json"
    try:
        return bool(json.loads(document.read_bytes()).get("node_type") == "group")
    except (OSError, ValueError, AttributeError):
        return False


def hierarchy_seed(group: Path) -> bytes | None:
    entries = []
    for path in sorted(p for p in group.rglob("*") if p.is_file()):
        if path.name in METADATA or path.stat().st_size <= SMALL_CHUNK:
            key = path.relative_to(group).as_posix().encode()
            entries.append(key + b"\x00" + path.read_bytes())
    seed = b"\x00" + b"\xff".join(entries)
    return seed if len(seed) <= MAX_SEED else None


def main() -> None:
    corpus, root = Path(sys.argv[1]), Path(sys.argv[2])
    metadata, hierarchy = root / "metadata", root / "hierarchy"
    metadata.mkdir(parents=True, exist_ok=True)
    hierarchy.mkdir(parents=True, exist_ok=True)
    documents = groups = 0
    for name, format_byte in (("zarr.json", b"\x00"), (".zarray", b"\x01")):
        for path in sorted(corpus.rglob(name)):
            save(metadata, format_byte + path.read_bytes())
            documents += 1
    for directory in sorted({p.parent for p in corpus.rglob("*") if p.name in METADATA}):
        seed = hierarchy_seed(directory) if is_group(directory) else None
        if seed is not None:
            save(hierarchy, seed)
            groups += 1
    print(f"{documents} metadata documents and {groups} groups from {corpus} seed {root}")


if __name__ == "__main__":
    main()
