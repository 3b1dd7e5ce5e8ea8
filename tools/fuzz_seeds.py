"""Seeds the fuzz targets (rust/fuzz) that take metadata from their input, from a corpus.

- `metadata`: every metadata document, as one byte for the format (0: a v3 `zarr.json`,
  1: a v2 `.zarray`) and then the document.
- `hierarchy`: every group, as a flags byte of 0 (the group at the root), then its store
  entries separated by 0xFF, each a key relative to the group, a 0 byte and the value: every
  metadata document below the group, and the chunks small enough to keep the seed short.
- `zip_store`: every zip file of the corpus that is short enough, and each group's entries
  (those of its `hierarchy` seed) as a zip, stored uncompressed as zarr-python writes them.

Usage: fuzz_seeds.py CORPUS_DIR SEED_ROOT (seeds go to SEED_ROOT/metadata,
SEED_ROOT/hierarchy and SEED_ROOT/zip_store).
"""

import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

METADATA = {"zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata"}
SMALL_CHUNK = 512
MAX_SEED = 65536
MAX_ZIP_SEED = 131072


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


def group_entries(group: Path) -> list[tuple[str, bytes]]:
    """The metadata documents below `group`, and the chunks small enough for a seed."""
    return [
        (path.relative_to(group).as_posix(), path.read_bytes())
        for path in sorted(p for p in group.rglob("*") if p.is_file())
        if path.name in METADATA or path.stat().st_size <= SMALL_CHUNK
    ]


def hierarchy_seed(group: Path) -> bytes | None:
    entries = [key.encode() + b"\x00" + value for key, value in group_entries(group)]
    seed = b"\x00" + b"\xff".join(entries)
    return seed if len(seed) <= MAX_SEED else None


def zip_seed(group: Path) -> bytes | None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as z:
        for key, value in group_entries(group):
            z.writestr(key, value)
    seed = buffer.getvalue()
    return seed if len(seed) <= MAX_ZIP_SEED else None


def main() -> None:
    corpus, root = Path(sys.argv[1]), Path(sys.argv[2])
    metadata, hierarchy, zips = root / "metadata", root / "hierarchy", root / "zip_store"
    for directory in (metadata, hierarchy, zips):
        directory.mkdir(parents=True, exist_ok=True)
    documents = groups = zipped = 0
    for name, format_byte in (("zarr.json", b"\x00"), (".zarray", b"\x01")):
        for path in sorted(corpus.rglob(name)):
            save(metadata, format_byte + path.read_bytes())
            documents += 1
    for directory in sorted({p.parent for p in corpus.rglob("*") if p.name in METADATA}):
        seed = hierarchy_seed(directory) if is_group(directory) else None
        if seed is not None:
            save(hierarchy, seed)
            groups += 1
        zipped_group = zip_seed(directory) if is_group(directory) else None
        if zipped_group is not None:
            save(zips, zipped_group)
            zipped += 1
    for path in sorted(corpus.rglob("*.zip")):
        if path.stat().st_size <= MAX_ZIP_SEED:
            save(zips, path.read_bytes())
            zipped += 1
    print(
        f"{documents} metadata documents, {groups} groups and {zipped} zip files from {corpus} "
        f"seed {root}"
    )


if __name__ == "__main__":
    main()
