"""Codecs, named and configured as in zarr-python's ``zarr.codecs``.

A codec can be given to :func:`oxzarr.create_array` as one of these objects, as its JSON
metadata (``{"name": "zstd", "configuration": {"level": 3}}``), or as a zarr-python codec
object. The engine does the encoding and decoding; these classes only describe it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np

__all__ = [
    "BloscCname",
    "BloscCodec",
    "BloscShuffle",
    "BytesCodec",
    "Codec",
    "Crc32cCodec",
    "Endian",
    "GzipCodec",
    "NumcodecsConfig",
    "ShardingCodec",
    "ShardingCodecIndexLocation",
    "TransposeCodec",
    "VLenBytesCodec",
    "VLenUTF8Codec",
    "ZstdCodec",
    "codec_from_dict",
]

JSON = Any


class BloscShuffle(StrEnum):
    """Blosc's shuffles, by zarr-python's names (plain text works as well)."""

    noshuffle = "noshuffle"
    shuffle = "shuffle"
    bitshuffle = "bitshuffle"


class BloscCname(StrEnum):
    """Blosc's compressors, by zarr-python's names."""

    lz4 = "lz4"
    lz4hc = "lz4hc"
    blosclz = "blosclz"
    zstd = "zstd"
    snappy = "snappy"
    zlib = "zlib"


class Endian(StrEnum):
    """The bytes codec's byte orders."""

    big = "big"
    little = "little"


class ShardingCodecIndexLocation(StrEnum):
    """Where a shard's index is."""

    start = "start"
    end = "end"


def _value(setting: Any) -> Any:
    """A setting given as an enum member (oxzarr's, or zarr-python's, whose str() is not its
    value) as its value."""
    return getattr(setting, "value", setting)


class Codec:
    """Base of the codec descriptions."""

    name: str = ""

    def configuration(self) -> dict[str, JSON]:
        return {}

    def to_dict(self) -> dict[str, JSON]:
        """The codec's metadata, as written in ``zarr.json``."""
        config = self.configuration()
        return {"name": self.name, "configuration": config} if config else {"name": self.name}

    def _for_dtype(self, dtype: np.dtype[Any]) -> Codec:
        """This codec with settings that depend on the data type filled in."""
        return self


@dataclass(frozen=True)
class BytesCodec(Codec):
    """Serialises elements in C order with the given byte order (array→bytes)."""

    endian: Literal["little", "big"] | None = "little"
    name = "bytes"

    def configuration(self) -> dict[str, JSON]:
        return {"endian": str(_value(self.endian))} if self.endian is not None else {}

    def _for_dtype(self, dtype: np.dtype[Any]) -> Codec:
        # Byte order means nothing for types numpy gives none ("|": one-byte numbers, bytes,
        # raw bytes, records, whose fields are stored as laid out); zarr-python leaves it out.
        return BytesCodec(endian=None) if dtype.byteorder == "|" else self


def _integers(values: Any, codec: str, field: str) -> tuple[int, ...]:
    """`values` as integers, as the codec's metadata holds them: 1.7 or "10" are refused
    (a TypeError, as zarr-python's), not truncated or read digit by digit."""
    items = list(values) if not isinstance(values, str | bytes) else None
    if items is None or any(isinstance(i, bool) for i in items):
        raise TypeError(f"{codec} {field} must be integers, not {values!r}")
    try:
        return tuple(operator.index(i) for i in items)
    except TypeError:
        raise TypeError(f"{codec} {field} must be integers, not {values!r}") from None


@dataclass(frozen=True)
class TransposeCodec(Codec):
    """Permutes the dimensions of each chunk (array→array)."""

    order: tuple[int, ...] = ()
    name = "transpose"

    def __init__(self, order: Iterable[int]) -> None:
        object.__setattr__(self, "order", _integers(order, "transpose", "order"))

    def configuration(self) -> dict[str, JSON]:
        return {"order": list(self.order)}


@dataclass(frozen=True)
class GzipCodec(Codec):
    """gzip compression (bytes→bytes)."""

    level: int = 5
    name = "gzip"

    def configuration(self) -> dict[str, JSON]:
        return {"level": self.level}


@dataclass(frozen=True)
class ZstdCodec(Codec):
    """Zstandard compression (bytes→bytes). Level 0 is zstd's default level."""

    level: int = 0
    checksum: bool = False
    name = "zstd"

    def configuration(self) -> dict[str, JSON]:
        return {"level": self.level, "checksum": self.checksum}


@dataclass(frozen=True)
class BloscCodec(Codec):
    """Blosc compression (bytes→bytes). ``typesize`` defaults to the item size and
    ``shuffle`` to bitshuffle for one-byte types and shuffle otherwise, as in zarr-python."""

    typesize: int | None = None
    cname: Literal["blosclz", "lz4", "lz4hc", "zlib", "zstd"] = "zstd"
    clevel: int = 5
    shuffle: Literal["noshuffle", "shuffle", "bitshuffle"] | None = None
    blocksize: int = 0
    name = "blosc"

    def configuration(self) -> dict[str, JSON]:
        config: dict[str, JSON] = {}
        if self.typesize is not None:
            config["typesize"] = self.typesize
        config["cname"] = str(_value(self.cname))
        config["clevel"] = self.clevel
        config["shuffle"] = str(_value(self.shuffle)) if self.shuffle is not None else "noshuffle"
        config["blocksize"] = self.blocksize
        return config

    def _for_dtype(self, dtype: np.dtype[Any]) -> Codec:
        # Variable-length values (text, bytes) reach blosc as a stream of bytes: elements of
        # one byte, as zarr-python takes them (numpy's itemsize is of its own references).
        itemsize = 1 if dtype.kind in "OT" else dtype.itemsize
        shuffle = self.shuffle
        if shuffle is None:
            shuffle = "bitshuffle" if itemsize == 1 else "shuffle"
        typesize = self.typesize if self.typesize is not None else itemsize
        return BloscCodec(typesize, self.cname, self.clevel, shuffle, self.blocksize)


@dataclass(frozen=True)
class Crc32cCodec(Codec):
    """Appends a CRC-32C checksum, verified on read (bytes→bytes)."""

    name = "crc32c"


@dataclass(frozen=True)
class ShardingCodec(Codec):
    """Packs inner chunks of ``chunk_shape`` into each stored shard, with an index of where
    each one is (array→bytes). Usually made by ``create_array(..., shards=...)``."""

    chunk_shape: tuple[int, ...] = ()
    codecs: tuple[Codec, ...] = (BytesCodec(),)
    index_codecs: tuple[Codec, ...] = (BytesCodec(), Crc32cCodec())
    index_location: Literal["start", "end"] = "end"
    name = "sharding_indexed"

    def __init__(
        self,
        *,
        chunk_shape: Iterable[int],
        codecs: Iterable[Any] = (BytesCodec(),),
        index_codecs: Iterable[Any] = (BytesCodec(), Crc32cCodec()),
        index_location: Literal["start", "end"] = "end",
    ) -> None:
        object.__setattr__(
            self, "chunk_shape", _integers(chunk_shape, "sharding_indexed", "chunk_shape")
        )
        object.__setattr__(self, "codecs", tuple(to_codec(c) for c in codecs))
        object.__setattr__(self, "index_codecs", tuple(to_codec(c) for c in index_codecs))
        object.__setattr__(self, "index_location", index_location)

    def configuration(self) -> dict[str, JSON]:
        return {
            "chunk_shape": list(self.chunk_shape),
            "codecs": [c.to_dict() for c in self.codecs],
            "index_codecs": [c.to_dict() for c in self.index_codecs],
            "index_location": str(_value(self.index_location)),
        }

    def _for_dtype(self, dtype: np.dtype[Any]) -> Codec:
        return ShardingCodec(
            chunk_shape=self.chunk_shape,
            codecs=[c._for_dtype(dtype) for c in self.codecs],
            index_codecs=self.index_codecs,
            index_location=self.index_location,
        )


class _VLenCodec(Codec):
    def to_dict(self) -> dict[str, JSON]:
        # With its empty configuration, as zarr-python writes these.
        return {"name": self.name, "configuration": {}}


@dataclass(frozen=True)
class VLenUTF8Codec(_VLenCodec):
    """Variable-length UTF-8 text (array→bytes): the serializer of ``dtype=str`` arrays."""

    name = "vlen-utf8"


@dataclass(frozen=True)
class VLenBytesCodec(_VLenCodec):
    """Variable-length bytes (array→bytes): the serializer of ``dtype=bytes`` arrays."""

    name = "vlen-bytes"


@dataclass(frozen=True)
class _MetadataCodec(Codec):
    """A codec known only by its metadata (one oxzarr has no class for)."""

    metadata: Mapping[str, JSON] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSON]:
        return dict(self.metadata)

    def __repr__(self) -> str:
        # By the codec's own name, as v2 configurations show (``vlen-utf8()``): the class is
        # oxzarr's stand-in, nothing a user made.
        configuration = self.metadata.get("configuration")
        items = configuration.items() if isinstance(configuration, Mapping) else ()
        args = ", ".join(f"{k}={v!r}" for k, v in items)
        return f"{self.metadata.get('name')}({args})"


@dataclass(frozen=True)
class NumcodecsConfig(Codec):
    """A numcodecs configuration (``{"id": "zlib", "level": 1}``), as Zarr v2 metadata holds
    codecs. ``get_config()`` gives it back, as numcodecs codecs do."""

    config: Mapping[str, JSON] = field(default_factory=dict)

    @property
    def codec_id(self) -> str:
        return str(self.config.get("id", ""))

    def get_config(self) -> dict[str, JSON]:
        return dict(self.config)

    def __getattr__(self, name: str) -> JSON:
        # The settings as attributes, as numcodecs codecs have them (``compressor.level``).
        config = self.__dict__.get("config") or {}
        if name.startswith("_") or name == "id" or name not in config:
            # (Not through repr: that reads the settings, which a copy being made lacks.)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return config[name]

    def to_dict(self) -> dict[str, JSON]:
        config = {k: v for k, v in self.config.items() if k != "id"}
        return {"name": f"numcodecs.{self.codec_id}", "configuration": config}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "id")
        return f"{self.codec_id}({args})"


_CLASSES: dict[str, type[Codec]] = {
    "bytes": BytesCodec,
    "transpose": TransposeCodec,
    "gzip": GzipCodec,
    "zstd": ZstdCodec,
    "blosc": BloscCodec,
    "crc32c": Crc32cCodec,
    "sharding_indexed": ShardingCodec,
    "vlen-utf8": VLenUTF8Codec,
    "vlen-bytes": VLenBytesCodec,
}


def codec_from_dict(metadata: Mapping[str, JSON] | str) -> Codec:
    """The codec object for a codec's metadata (a bare name is a codec with no settings)."""
    if isinstance(metadata, str):
        metadata = {"name": metadata}
    name = metadata.get("name")
    config = metadata.get("configuration") or {}
    cls = _CLASSES.get(str(name))
    if cls is None or not isinstance(config, Mapping):
        return _MetadataCodec(metadata=dict(metadata))
    try:
        return cls(**config)
    except TypeError:
        # A setting this class does not model: keep the metadata as it is.
        return _MetadataCodec(metadata=dict(metadata))


def to_codec(value: Any) -> Codec:
    """A codec from any accepted form: an oxzarr codec, its metadata, or an object with
    ``to_dict()`` (zarr-python's codecs)."""
    if isinstance(value, Codec):
        return value
    if isinstance(value, str | Mapping):
        if isinstance(value, Mapping) and "name" not in value:
            raise ValueError(f"codec metadata needs a 'name': {dict(value)!r}")
        return codec_from_dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        metadata = to_dict()
        if isinstance(metadata, Mapping) and "name" in metadata:
            # zarr-python leaves Blosc's typesize and shuffle open until it knows the dtype:
            # older versions as None, 3.1 as placeholders (1, bitshuffle) it names tunable.
            config = dict(metadata.get("configuration") or {})
            if metadata["name"] == "sharding_indexed" and hasattr(value, "codecs"):
                # Its inner codecs as objects, so that a blosc among them is left open to
                # the dtype as one outside is (its metadata has zarr-python's placeholders).
                location = getattr(value, "index_location", "end")
                return ShardingCodec(
                    chunk_shape=value.chunk_shape,
                    codecs=[to_codec(c) for c in value.codecs],
                    index_codecs=[to_codec(c) for c in value.index_codecs],
                    index_location="start"
                    if str(getattr(location, "value", location)) == "start"
                    else "end",
                )
            if metadata["name"] == "blosc":
                tunable = set(getattr(value, "_tunable_attrs", ()))
                for attr in ("typesize", "shuffle"):
                    if attr in tunable or config.get(attr) is None:
                        config.pop(attr, None)
                return codec_from_dict({"name": "blosc", "configuration": config})
            return codec_from_dict(metadata)
    raise TypeError(f"not a codec: {value!r}")
