"""The ``oxzarr`` command: convert, info, tree, verify.

Errors print one line naming the problem and exit with status 2 (verify: 1 means the two
differ); Ctrl-C stops a conversion once the units in flight are written, removes the partial
output and exits with status 130.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn, TextIO, cast

import numpy as np

from oxzarr import __version__
from oxzarr.api import open
from oxzarr.array import Array, ArrayMetadata
from oxzarr.codecs import BloscCodec, GzipCodec, ZstdCodec
from oxzarr.config import MAX_THREADS, config
from oxzarr.convert import (
    KEEP,
    MEMORY_BOUND_BYTES,
    FillValueText,
    Interrupted,
    Progress,
    block_at,
    block_shape,
    blocks_holding_stored_chunks,
    convert,
    open_as_stored,
    read_alike_where_unstored,
)
from oxzarr.errors import ContainsArrayError, ContainsGroupError
from oxzarr.group import Group
from oxzarr.storage import make_store

EXIT_DIFFERENT = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

_SHUFFLES = ("noshuffle", "shuffle", "bitshuffle")
_BLOSC_CNAMES = ("blosclz", "lz4", "lz4hc", "zlib", "zstd")


class _UsageError(Exception):
    pass


def _shape(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise _UsageError(f"{option} takes integers separated by commas, not {text!r}") from None
    if any(v <= 0 for v in values):
        raise _UsageError(f"{option} takes positive integers, not {text!r}")
    return values


def storage_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, one storage option (s3fs's, gcsfs's or object_store's names). The value
    is read as JSON where it is JSON (``anon=true``, ``client_kwargs={"region_name": "x"}``),
    else taken as text (``endpoint_url=http://localhost:9000``)."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _options(pairs: list[tuple[str, Any]]) -> dict[str, Any] | None:
    return dict(pairs) or None


def parse_compressor(text: str) -> list[Any]:
    """``zstd:LEVEL``, ``blosc:CNAME:CLEVEL:SHUFFLE``, ``gzip:LEVEL`` or ``none``."""
    parts = text.split(":")
    name, args = parts[0].lower(), parts[1:]

    def level(value: str, low: int, high: int) -> int:
        try:
            n = int(value)
        except ValueError:
            raise _UsageError(f"--compressor {text}: {value!r} is not a level") from None
        if not low <= n <= high:
            raise _UsageError(f"--compressor {text}: the level must be {low} to {high}")
        return n

    if name == "none" and not args:
        return []
    if name == "zstd" and len(args) <= 1:
        return [ZstdCodec(level=level(args[0], -131072, 22) if args else 3)]
    if name == "gzip" and len(args) <= 1:
        return [GzipCodec(level=level(args[0], 0, 9) if args else 5)]
    if name == "blosc" and len(args) == 3:
        cname, clevel, shuffle = args
        if cname not in _BLOSC_CNAMES:
            raise _UsageError(
                f"--compressor {text}: blosc compresses with {', '.join(_BLOSC_CNAMES)}, "
                f"not {cname!r}"
            )
        if shuffle not in _SHUFFLES:
            raise _UsageError(
                f"--compressor {text}: SHUFFLE is {', '.join(_SHUFFLES)}, not {shuffle!r}"
            )
        # Both checked against the names blosc knows, just above.
        chosen: Any = (cname, shuffle)
        return [BloscCodec(cname=chosen[0], clevel=level(clevel, 0, 9), shuffle=chosen[1])]
    raise _UsageError(
        f"unknown compressor {text!r}: use zstd:LEVEL, blosc:CNAME:CLEVEL:SHUFFLE, "
        "gzip:LEVEL or none"
    )


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressBar:
    """One line, rewritten in place: units (shards or chunks) done, bytes, rate and ETA."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last = 0.0
        self.width = 0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if now - self.last < 0.2 and p.units_done < p.units_total:
            return
        self.last = now
        elapsed = max(now - p.started, 1e-9)
        fraction = p.bytes_done / p.bytes_total if p.bytes_total else 1.0
        rate = p.bytes_done / elapsed
        eta = (p.bytes_total - p.bytes_done) / rate if rate > 0 else 0.0
        bar = "#" * int(fraction * 24)
        line = (
            f"[{bar:<24}] {p.units_done}/{p.units_total} units  "
            f"{_human_bytes(p.bytes_done)}/{_human_bytes(p.bytes_total)}  "
            f"{_human_bytes(rate)}/s  ETA {_duration(eta)}  {p.array}"
        )
        self.width = max(self.width, len(line))
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()

    def finish(self) -> None:
        if self.width:
            self.stream.write("\n")
            self.stream.flush()


def _convert(args: argparse.Namespace) -> int:
    if args.threads is not None:
        if not 0 < args.threads <= MAX_THREADS:
            raise _UsageError(f"--threads takes a number from 1 to {MAX_THREADS}")
        config.set({"threads": args.threads})
    shards: Any = KEEP
    if args.shards is not None:
        shards = None if args.shards.lower() == "none" else _shape(args.shards, "--shards")
    dtype = None
    if args.dtype is not None:
        try:
            dtype = np.dtype(args.dtype)
        except TypeError:
            raise _UsageError(f"unknown data type {args.dtype!r}") from None
    fill_value: Any = KEEP
    if args.fill_value is not None:
        # Read by each array's data type (see FillValueText).
        fill_value = FillValueText(args.fill_value)
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    bar = ProgressBar(sys.stderr) if show else None
    destination: Any = args.destination
    if args.destination_option:
        # A store object goes to convert() as it is: only local destinations are staged.
        destination = make_store(destination, storage_options=_options(args.destination_option))
    try:
        report = convert(
            args.source,
            destination,
            storage_options=_options(args.source_option),
            zarr_format=args.zarr_format,
            chunks=_shape(args.chunks, "--chunks") if args.chunks is not None else None,
            shards=shards,
            compressors=KEEP if args.compressor is None else parse_compressor(args.compressor),
            dtype=dtype,
            fill_value=fill_value,
            overwrite=args.overwrite,
            progress=bar,
        )
    except (ContainsArrayError, ContainsGroupError) as e:
        # A destination that is not a local path (s3://...) is refused where a node is in
        # the way, in the API's words ("pass overwrite=True"): the command's option is
        # --overwrite, as it says for a local destination.
        if args.overwrite:
            raise
        raise FileExistsError(f"{args.destination} exists (overwrite it with --overwrite)") from e
    finally:
        if bar is not None:
            bar.finish()
    if show:
        rate = report.bytes / report.seconds if report.seconds else 0.0
        print(
            f"converted {report.arrays} array(s) in {report.groups} group(s): "
            f"{report.units} units, {_human_bytes(report.bytes)} in {report.seconds:.2f} s "
            f"({_human_bytes(rate)}/s)",
            file=sys.stderr,
        )
    return 0


def _describe_codecs(array: Array) -> str:
    parts = [str(c) for c in (*array.filters, array.serializer, *array.compressors) if c]
    return ", ".join(parts) or "none"


def _describe_dimension_names(array: Array) -> str:
    metadata = array.metadata
    if isinstance(metadata, ArrayMetadata):
        names: object = metadata.dimension_names
    else:
        # v2 has no field for them; xarray's attribute is the convention everyone reads.
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    return str(tuple(names)) if isinstance(names, (list, tuple)) and names else "none"


def _refuse_a_plain_file(path: str) -> None:
    """Refuses a regular file that is no zip as what it is: opened as a store, it would be a
    directory holding nothing ("no node found")."""
    if "://" not in path and os.path.isfile(path) and not path.lower().endswith(".zip"):
        raise ValueError(f"{path}: a file, not a Zarr store (a directory or a .zip file)")


def _open_node(path: str, options: dict[str, Any] | None) -> Array | Group:
    """The node at `path`, opened for reading."""
    _refuse_a_plain_file(path)
    return open(path, mode="r", storage_options=options)


def _info(args: argparse.Namespace) -> int:
    node = _open_node(args.path, _options(args.storage_option))
    out = sys.stdout
    if isinstance(node, Group):
        out.write(f"Group  Zarr v{node.zarr_format}  {args.path}\n")
        if dict(node.attrs):
            out.write(f"attributes: {json.dumps(dict(node.attrs), sort_keys=True)}\n")
        for name, member in node._members_or_refusals():
            if isinstance(member, Array):
                out.write(f"  {name}  (array) {member.shape} {member.dtype}\n")
            elif isinstance(member, Group):
                out.write(f"  {name}  (group) \n")
            else:
                out.write(f"  {name}  (cannot be opened: {member})\n")
        return 0
    try:
        stored: int | None = node.nbytes_stored()
    except io.UnsupportedOperation:
        stored = None  # a store that cannot list its keys (a static web server)
    ratio = f"{node.nbytes / stored:.2f}" if stored else "-"
    rows = [
        ("format", f"Zarr v{node.zarr_format}"),
        ("shape", str(node.shape)),
        ("dimension names", _describe_dimension_names(node)),
        ("dtype", str(node.dtype)),
        ("chunks", str(node.chunks)),
        ("shards", str(node.shards) if node.shards else "none"),
        ("codecs", _describe_codecs(node)),
        ("fill value", str(node.fill_value)),
        ("bytes", f"{node.nbytes} ({_human_bytes(node.nbytes)})"),
        (
            "stored bytes",
            f"{stored} ({_human_bytes(stored)})" if stored is not None else "unknown (not listed)",
        ),
        ("compression ratio", ratio),
        ("attributes", json.dumps(dict(node.attrs), sort_keys=True)),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key:<{width}}  {value}\n")
    return 0


def _tree(args: argparse.Namespace) -> int:
    node = _open_node(args.path, _options(args.storage_option))
    if isinstance(node, Array):
        sys.stdout.write(f"/ {node.shape} {node.dtype}\n")
        return 0
    sys.stdout.write(f"{node.tree()}\n")
    return 0


def _in_native_order(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype with its byte order set aside: values, not their storage, are compared."""
    try:
        return dtype.newbyteorder("=")
    except (TypeError, ValueError):  # dtypes without a byte order (StringDType)
        return dtype


def _equal_values(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> bool:
    """Equal shapes and values, a missing value (NaN, NaT) equal to itself, field by field
    for records."""
    if x.shape != y.shape:
        return False
    if x.dtype.names is not None and y.dtype.names is not None:
        return x.dtype.names == y.dtype.names and all(
            _equal_values(x[n], y[n]) for n in x.dtype.names
        )
    if x.dtype.kind == "c" or y.dtype.kind == "c":
        # Part by part: numpy's equal_nan takes any complex number with a NaN part as
        # equal to any other.
        return _equal_values(np.real(x), np.real(y)) and _equal_values(np.imag(x), np.imag(y))
    if x.dtype.kind == "f":
        return bool(np.array_equal(x, y, equal_nan=True))
    if x.dtype.kind in "mM" and y.dtype.kind == x.dtype.kind:
        missing = np.isnat(x)
        return bool(np.array_equal(missing, np.isnat(y)) and np.all((x == y) | missing))
    if x.dtype == object or y.dtype == object:
        return bool(x.tolist() == y.tolist())
    return bool(np.array_equal(x, y))


def _same_values(a: Array, b: Array, where: str, out: TextIO) -> bool:
    if a.shape != b.shape:
        out.write(f"{where}: shapes differ: {a.shape} and {b.shape}\n")
        return False
    if _in_native_order(a.dtype) != _in_native_order(b.dtype):
        out.write(f"{where}: data types differ: {a.dtype} and {b.dtype}\n")
        return False
    shape = tuple(a.shape)
    block = block_shape(shape, tuple(a.shards or a.chunks), a.dtype.itemsize)
    corners: Iterable[tuple[int, ...]]
    # Where neither stores a chunk, both read alike: only the other blocks are read (a sparse
    # array of terabytes is compared in the time its stored chunks take), where both stores
    # can list their chunks.
    held = None
    if read_alike_where_unstored(a, b):
        ours, theirs = (blocks_holding_stored_chunks(x, block) for x in (a, b))
        if ours is not None and theirs is not None:
            held = ours | theirs
    if held is not None:
        corners = sorted(held)
    else:
        corners = np.ndindex(*(max(-(-n // k), 1) for n, k in zip(shape, block, strict=True)))
    for corner in corners:
        region = block_at(corner, block, shape)
        # (A 0-d array of text or bytes gives a str or bytes, not an array.)
        if not _equal_values(np.asarray(a[region], a.dtype), np.asarray(b[region], b.dtype)):
            bounds = ", ".join(f"{r.start}:{r.stop}" for r in region)
            out.write(f"{where}: values differ in [{bounds}]\n")
            return False
    return True


def _same(a: Array | Group, b: Array | Group, where: str, out: TextIO) -> bool:
    if isinstance(a, Array) and isinstance(b, Array):
        return _same_values(a, b, where, out)
    if isinstance(a, Group) and isinstance(b, Group):
        names_a, names_b = sorted(a.keys()), sorted(b.keys())
        if names_a != names_b:
            out.write(f"{where}: members differ: {names_a} and {names_b}\n")
            return False
        # Subgroups as stored too, not as consolidated metadata of their own says.
        return all(
            _same(a._child(n, False), b._child(n, False), f"{where.rstrip('/')}/{n}", out)
            for n in names_a
        )
    out.write(f"{where}: one is an array, the other a group\n")
    return False


def _verify(args: argparse.Namespace) -> int:
    # Groups as the stores hold them, whatever their consolidated metadata says.
    _refuse_a_plain_file(args.first)
    _refuse_a_plain_file(args.second)
    a, _ = open_as_stored(args.first, _options(args.option_a))
    b, _ = open_as_stored(args.second, _options(args.option_b))
    if _same(a, b, "/", sys.stdout):
        sys.stdout.write("equal\n")
        return 0
    return EXIT_DIFFERENT


def _option_argument(command: argparse.ArgumentParser, flag: str, of: str) -> None:
    command.add_argument(
        flag,
        type=storage_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a storage option {of} (an s3://, gs:// or http(s):// URL), as s3fs or gcsfs "
        "names it; VALUE is JSON or text (e.g. anon=true); repeat for more",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="oxzarr",
        description="Fast Zarr conversion and inspection, on oxzarr's Rust engine.",
    )
    top.add_argument("--version", action="version", version=f"oxzarr {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    bound = f"{MEMORY_BOUND_BYTES >> 20} MiB"
    conv = sub.add_parser(
        "convert",
        help="re-chunk, re-shard, re-compress, or change the Zarr format or data type",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Copy the array or group at SRC into a new DST with another layout. Options not\n"
            "given keep the source's settings. SRC is a Zarr store (v2 or v3), a .npy file,\n"
            "an HDF5 file (h5py needed) or FILE.h5:/path/inside; a group converts\n"
            "recursively with its attributes.\n\n"
            "Work goes output shard by output shard (chunk by chunk without shards), in\n"
            "parallel on every core, decoding each source chunk once.\n"
            f"Memory: about {bound} of decoded source chunks and output shards in flight\n"
            "(more only if one output shard needs more source chunks than that), plus an\n"
            "output chunk per thread, whatever the array's size: converting 864 MiB takes\n"
            "under 300 MiB. Source chunks that would not fit are read again rather than held.\n"
            "The plan takes a few hundred bytes per source chunk besides (a million chunks:\n"
            "some 300 MiB).\n\n"
            "A local DST is written beside its path and renamed into place when complete:\n"
            "after an error or Ctrl-C it is absent (or, with --overwrite, unchanged). A DST\n"
            "named *.zip is written as a zip file."
        ),
    )
    conv.add_argument("source", metavar="SRC")
    conv.add_argument("destination", metavar="DST")
    conv.add_argument("--zarr-format", type=int, choices=(2, 3), help="the output's format")
    conv.add_argument("--chunks", metavar="A,B,..", help="chunk shape (inner chunks if sharded)")
    conv.add_argument("--shards", metavar="A,B,..|none", help="shard shape, or none")
    conv.add_argument(
        "--compressor",
        metavar="SPEC",
        help="zstd:LEVEL, blosc:CNAME:CLEVEL:SHUFFLE (SHUFFLE: noshuffle, shuffle, "
        "bitshuffle), gzip:LEVEL or none",
    )
    conv.add_argument(
        "--dtype",
        metavar="T",
        help="data type, as numpy names it (e.g. f4). Between bool, integer, float and "
        "complex types, values convert as numpy's astype, except that floats out of an integer "
        "type's range saturate (NaN becomes 0) and complex to real is refused; other types "
        "(times, text, records) keep their own type",
    )
    conv.add_argument(
        "--fill-value",
        metavar="V",
        help="fill value of the output, read by each array's data type: text as typed, "
        "true/false/1/0 for bools, a number (nan, inf, -inf too), NaT or a date, the "
        "element's bytes in base64 for records and raw bytes",
    )
    conv.add_argument("--threads", type=int, metavar="N", help="threads (default: all cores)")
    progress = conv.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (the default on a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing DST")
    _option_argument(conv, "--source-option", "of SRC")
    _option_argument(conv, "--destination-option", "of DST")
    conv.set_defaults(run=_convert)

    info = sub.add_parser("info", help="format, shape, dtype, chunks, codecs, stored bytes")
    info.add_argument("path", metavar="PATH")
    _option_argument(info, "--storage-option", "of PATH")
    info.set_defaults(run=_info)

    tree = sub.add_parser("tree", help="the hierarchy of a group")
    tree.add_argument("path", metavar="PATH")
    _option_argument(tree, "--storage-option", "of PATH")
    tree.set_defaults(run=_tree)

    verify = sub.add_parser(
        "verify",
        help="exit 0 if A and B hold equal values, 1 if they differ, 2 on error",
    )
    verify.add_argument("first", metavar="A")
    verify.add_argument("second", metavar="B")
    _option_argument(verify, "--option-a", "of A")
    _option_argument(verify, "--option-b", "of B")
    verify.set_defaults(run=_verify)
    return top


class _Stream(io.TextIOBase):
    """Standard output or error as the commands write to them. A reader gone away (a closed
    pipe: ``oxzarr info x | head -1``) or a stream closed from the start (``2>&-``) takes the
    rest unseen: the command's work and exit status (verify's 1 for "differ") stay what they
    are, with no error about output nobody reads."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        try:
            return self._stream is not None and self._stream.isatty()
        except ValueError:  # closed
            return False

    def write(self, text: str) -> int:
        if self._stream is not None:
            try:
                self._stream.write(text)
                self._stream.flush()  # a closed pipe shows now, not at exit
            except BrokenPipeError:
                self._reader_gone(self._stream)
            except ValueError:
                # A closed file; text the stream cannot encode is an error of its own.
                if not self._stream.closed:
                    raise
                self._stream = None
        return len(text)

    def _reader_gone(self, stream: TextIO) -> None:
        # Python flushes the stream again at exit, and would print that it failed: what is
        # left in its buffer goes to /dev/null instead.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        self._stream = None


def _fail(message: str) -> NoReturn:
    sys.stderr.write(f"oxzarr: error: {message}\n")
    raise SystemExit(EXIT_ERROR)


def _option_strings(top: argparse.ArgumentParser, command: str) -> set[str]:
    """The option strings (``--overwrite``, ``-h``...) that `command` of `top` takes."""
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices[command]._option_string_actions)
    return set()


def _names_an_option(text: str, options: set[str]) -> bool:
    """Whether argparse reads `text` as one of `options`: the option itself, ``--option=X``,
    or the start of a long option's name (argparse takes ``--over`` for ``--overwrite``)."""
    if text in options:
        return True
    if not text.startswith("--"):
        return False
    name = text.partition("=")[0]
    return any(option.startswith(name) for option in options if option.startswith("--"))


def _join_negative_values(argv: Sequence[str], options: set[str]) -> list[str]:
    """`--fill-value -inf` as `--fill-value=-inf`: argparse takes a value starting with "-"
    for an option unless it looks like a plain number, and -inf, -nan or -1e5 do not. A
    value that is one of `options` is left apart: `--fill-value --overwrite` lacks its value,
    and argparse says so, where joining them would take "--overwrite" for the fill value and
    drop the option."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        if (
            args[i] == "--fill-value"
            and i + 1 < len(args)
            and args[i + 1].startswith("-")
            and not _names_an_option(args[i + 1], options)
        ):
            out.append(f"--fill-value={args[i + 1]}")
            i += 2
        else:
            out.append(args[i])
            i += 1
    return out


def _interrupt_once() -> None:
    """Makes Ctrl-C interrupt the command once: later presses, while it stops, cleans up and
    says what it left, do nothing. A second press raising anywhere in that (between two of
    the cleanup's steps, or as the message is written) would cut it short or turn the
    message into a bare "interrupted". Left alone where Ctrl-C is ignored or handled by
    someone else. SIGTERM (what kill, timeout, systemd and docker stop send) stops the
    command the same way, so that it too leaves no partial destination behind."""
    pressed: int | None = None  # the signal that interrupted the command, once one has

    def once(signum: int, frame: Any) -> None:
        nonlocal pressed
        if pressed is None:
            pressed = signum
            raise KeyboardInterrupt

    def unraisable(info: Any) -> None:
        # The interrupt raised where Python swallows exceptions (the callback of a weak
        # reference to a dropped handle, a __del__) would be lost, and the later presses
        # ignored: the signal is sent again, from another thread a moment later, to raise
        # once this has returned (sent from here, it would raise here, and be lost again).
        nonlocal pressed
        if isinstance(info.exc_value, KeyboardInterrupt) and pressed is not None:
            signum, pressed = pressed, None
            again = threading.Timer(
                0.01, signal.pthread_kill, (threading.main_thread().ident, signum)
            )
            again.daemon = True
            again.start()
            return
        previous(info)

    previous = sys.unraisablehook
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, once)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, once)
    sys.unraisablehook = unraisable


def main(argv: Sequence[str] | None = None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = cast(TextIO, _Stream(stdout)), cast(TextIO, _Stream(stderr))
    try:
        return _main(argv)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _main(argv: Sequence[str] | None) -> int:
    top = parser()
    given = sys.argv[1:] if argv is None else argv
    args = top.parse_args(_join_negative_values(given, _option_strings(top, "convert")))
    if argv is None:
        _interrupt_once()
    try:
        return int(args.run(args))
    except (Interrupted, KeyboardInterrupt) as e:
        if argv is None:
            # The command is ending: a press from here on, up to the interpreter's exit
            # (which would put back the default action for a handler still installed), must
            # not turn the exit status into a signal's.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        detail = f": {e}" if isinstance(e, Interrupted) else ""
        sys.stderr.write(f"oxzarr: interrupted{detail}\n")
        return EXIT_INTERRUPTED
    except _UsageError as e:
        _fail(str(e))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        # The engine's errors name the store key or path; FileNotFoundError and friends keep
        # their own message form.
        message = str(e) if not isinstance(e, KeyError) else str(e.args[0] if e.args else e)
        _fail(message or type(e).__name__)
    except Exception as e:
        # A bug of oxzarr's own: still one line, with the traceback on request.
        if os.environ.get("OXZARR_TRACEBACK"):
            raise
        _fail(f"internal error ({type(e).__name__}: {e}); OXZARR_TRACEBACK=1 shows where")
    except BaseException as e:
        # pyo3's PanicException (a panic of the engine's) is no Exception, so that code
        # catching those lets it through: the command still ends with one line and status 2
        # (1 would say "differ" for verify).
        if type(e).__name__ != "PanicException" or os.environ.get("OXZARR_TRACEBACK"):
            raise
        _fail(f"internal error (the engine panicked: {e}); OXZARR_TRACEBACK=1 shows where")


if __name__ == "__main__":  # python -m oxzarr.cli
    sys.exit(main())
