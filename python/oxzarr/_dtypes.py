"""numpy dtypes and the Zarr data types they are stored as (v3 `data_type`, v2 `dtype`), and
fill values in each format's JSON encoding."""

from __future__ import annotations

import base64
import datetime
import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from oxzarr import _core

JSON = Any

#: numpy dtypes whose name is also the Zarr v3 core data type's.
CORE = {
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
}

#: The dtype of variable-length text: numpy's StringDType (numpy >= 2), else objects.
STRING_DTYPE: np.dtype[Any] = (
    np.dtypes.StringDType() if hasattr(np.dtypes, "StringDType") else np.dtype(object)
)


def is_text(dtype: Any) -> bool:
    """Whether `dtype` asks for variable-length text: str, "str" or "string" (as zarr-python
    takes them), a zero-length U, StringDType, or objects."""
    if dtype is str or (isinstance(dtype, str) and dtype in ("str", "string")):
        return True
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return bool(dt.kind in "TO" or (dt.kind == "U" and dt.itemsize == 0))


def refuse_missing_strings(dtype: Any, where: str) -> None:
    """Refuses numpy's StringDType with a missing value (``na_object``): Zarr's string type
    has none, and numpy would turn each missing string into the text of its sentinel ("None",
    "nan") on the way in, indistinguishable from real data. `where` names the array."""
    if isinstance(dtype, np.dtype) and hasattr(dtype, "na_object"):
        raise ValueError(
            f"{where}: {dtype!r} has a missing value (na_object), which Zarr's string type "
            "cannot store; use StringDType() and a string of your choosing for missing values"
        )


def is_variable_bytes(dtype: Any) -> bool:
    """Whether `dtype` asks for variable-length bytes (`bytes`, or a zero-length S)."""
    if dtype is bytes:
        return True
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return bool(dt.kind == "S" and dt.itemsize == 0)


def _v3_name(dt: np.dtype[Any]) -> JSON:
    if dt.name in CORE:
        return dt.name
    if dt.kind in "Mm":
        unit, scale = np.datetime_data(dt)
        return {
            "name": "numpy.datetime64" if dt.kind == "M" else "numpy.timedelta64",
            "configuration": {"unit": unit, "scale_factor": int(scale)},
        }
    if dt.kind == "S":
        return {"name": "null_terminated_bytes", "configuration": {"length_bytes": dt.itemsize}}
    if dt.kind == "U":
        return {"name": "fixed_length_utf32", "configuration": {"length_bytes": dt.itemsize}}
    if dt.kind == "V" and dt.fields is None:
        return {"name": "raw_bytes", "configuration": {"length_bytes": dt.itemsize}}
    if dt.fields is not None:
        fields = []
        offset = 0
        for name in dt.names or ():
            field, field_offset = dt.fields[name][:2]
            if field_offset != offset or field.subdtype is not None:
                raise ValueError(
                    f"unsupported record dtype {dt}: fields must be packed, without sub-arrays"
                )
            fields.append([name, _v3_name(field.newbyteorder("="))])
            offset += field.itemsize
        if offset != dt.itemsize:
            raise ValueError(f"unsupported record dtype {dt}: it has padding")
        return {"name": "structured", "configuration": {"fields": fields}}
    raise ValueError(f"unsupported data type {dt}")


def _v2_str(dt: np.dtype[Any]) -> JSON:
    if dt.fields is not None:
        out = []
        for name in dt.names or ():
            field = dt.fields[name][0]
            if field.subdtype is not None:
                raise ValueError(f"unsupported record dtype {dt}: fields with a shape")
            out.append([name, _v2_str(field)])
        return out
    if dt.kind == "O":
        return "|O"
    code = dt.str
    if code[0] == "=":
        code = ("<" if np.little_endian else ">") + code[1:]
    return code


def v2_dtype(stored: Any) -> Any:
    """A `.zarray` dtype as numpy takes it: a record's fields (JSON lists) become tuples, at
    every level of nesting."""
    if isinstance(stored, list):
        return [(f[0], v2_dtype(f[1]), *f[2:]) for f in stored]
    return stored


def _from_zarr_python_data_type(dtype: Any) -> Any:
    """A zarr-python data type object (``zarr.dtype.ZDType``) as the numpy dtype it stands
    for (byte order included, which v2 arrays keep); its variable-length strings and bytes as
    ``str`` and ``bytes``. (Known by module and method, so that zarr need not be imported.)"""
    if not type(dtype).__module__.startswith("zarr.") or not callable(
        getattr(dtype, "to_native_dtype", None)
    ):
        return dtype
    name = type(dtype).__name__
    if name == "VariableLengthUTF8":
        return str
    if name == "VariableLengthBytes":
        return bytes
    return dtype.to_native_dtype()


def requested_dtype(dtype: Any) -> Any:
    """`dtype` as the rest of create_array takes it, when it is written as a format stores
    data types (as zarr-python takes them too): a v3 ``data_type`` object or a v3 name numpy
    does not know ("variable_length_bytes", "r16"), read by the engine; a v2 record's list of
    fields; zarr-python's data type objects (``zarr.dtype.Int32()``). Anything else is
    returned as it is."""
    dtype = _from_zarr_python_data_type(dtype)
    if isinstance(dtype, list):
        return v2_dtype(dtype)
    if isinstance(dtype, str):
        try:
            np.dtype(dtype)
            return dtype
        except TypeError:
            pass
    elif not isinstance(dtype, Mapping) or "name" not in dtype:
        return dtype  # numpy's own dicts ({"names": ..., "formats": ...}) among them
    try:
        described = json.loads(_core.numpy_dtype_of_data_type(json.dumps(dtype)))
    except ValueError:
        if isinstance(dtype, str):
            return dtype  # neither numpy's nor the format's: numpy's TypeError follows
        raise
    if described == "string":
        return str
    if described == "bytes":
        return bytes
    return np.dtype(described)


def packed(dt: np.dtype[Any]) -> np.dtype[Any]:
    """`dt`, a padded record dtype (align=True, a C struct's) packed field after field, as
    zarr-python stores it: the formats have no padding. Other dtypes are returned as given."""
    fields = dt.fields
    if fields is None or any(fields[n][0].subdtype is not None for n in dt.names or ()):
        return dt
    return np.dtype([(n, fields[n][0]) for n in dt.names or ()])


def zarr_data_type(dtype: Any, zarr_format: int) -> tuple[np.dtype[Any], JSON, str | None]:
    """For `dtype` given to create_array: the numpy dtype of decoded values, the data type as
    the format writes it, and the object codec v2 needs ("vlen-utf8", "vlen-bytes") if any."""
    if is_text(dtype):
        refuse_missing_strings(dtype, "dtype")
        return STRING_DTYPE, ("string" if zarr_format == 3 else "|O"), "vlen-utf8"
    if is_variable_bytes(dtype):
        return (
            np.dtype(object),
            ("variable_length_bytes" if zarr_format == 3 else "|O"),
            ("vlen-bytes"),
        )
    dt = packed(np.dtype(dtype))  # numpy's TypeError for what it does not understand
    if zarr_format == 2:
        try:
            _v3_name(dt.newbyteorder("=") if dt.fields is None else dt)  # checks support
        except ValueError:
            if dt.fields is None:
                raise
        return _native(dt), _v2_str(dt), None
    native = _native(dt)
    return native, _v3_name(native), None


def _native(dt: np.dtype[Any]) -> np.dtype[Any]:
    """`dt` with every field in the machine's byte order (how decoded values are held)."""
    if dt.fields is None:
        return dt.newbyteorder("=") if dt.byteorder not in ("|", "=") else dt
    return np.dtype(
        {
            "names": list(dt.names or ()),
            "formats": [_native(dt.fields[n][0]) for n in dt.names or ()],
            "offsets": [dt.fields[n][1] for n in dt.names or ()],
            "itemsize": dt.itemsize,
        }
    )


def _float_json(x: float) -> JSON:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return float(x)


class _DefaultFillValue:
    """The type of :data:`DEFAULT_FILL_VALUE`."""

    def __repr__(self) -> str:
        return "<the data type's default fill value>"


#: A fill value not given: the data type's default. Unlike ``None``, which in Zarr v2 means
#: no fill value (stored as ``null``), as zarr-python tells the two apart.
DEFAULT_FILL_VALUE: Any = _DefaultFillValue()


def _as_element(value: Any, dtype: np.dtype[Any]) -> Any:
    """`value` as one element of `dtype` (a float too large for it becomes infinite)."""
    if isinstance(value, str):  # "NaN", "Infinity", as numpy's float() reads them
        value = float(value) if dtype.kind == "f" else complex(value)
    if dtype.kind != "c" and np.iscomplexobj(value):
        raise TypeError(f"a complex fill value for {dtype}")
    with np.errstate(over="ignore"):
        return np.array(value).astype(dtype)[()]


#: numpy's time units, coarsest first.
_TIME_UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")


def _finer(dtype: np.dtype[Any], other: np.dtype[Any]) -> bool:
    """Whether the time unit of `dtype` is finer than that of `other`."""
    unit, other_unit = np.datetime_data(dtype)[0], np.datetime_data(other)[0]
    if unit not in _TIME_UNITS or other_unit not in _TIME_UNITS:
        return False
    return _TIME_UNITS.index(unit) > _TIME_UNITS.index(other_unit)


#: What each kind of time is, one and several.
_TIME_KINDS = {"M": ("a point in time", "points in time"), "m": ("a duration", "durations")}


def _time_kind(value: Any) -> str | None:
    """numpy's kind of a time value: ``"M"`` for a point in time (a datetime64, Python's
    date and datetime), ``"m"`` for a duration (a timedelta64, Python's timedelta); ``None``
    for anything else (numbers, text)."""
    if isinstance(value, datetime.timedelta):
        return "m"
    if isinstance(value, datetime.date):
        return "M"
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "Mm":
        return dtype.kind
    return None


def fill_value_json(fill_value: Any, dtype: np.dtype[Any], zarr_format: int) -> JSON:
    """The fill value in the format's JSON encoding. :data:`DEFAULT_FILL_VALUE` is the data
    type's default, as zarr-python picks it; so is None in v3, while in v2 None is ``null``
    (no fill value: unwritten chunks read as the data type's default)."""
    if fill_value is DEFAULT_FILL_VALUE:
        fill_value = None
    elif fill_value is None and zarr_format == 2:
        return None
    time_kind = _time_kind(fill_value) if dtype.kind in "Mm" else None
    if time_kind is not None and time_kind != dtype.kind:
        # numpy casts one into the other by its count (3 days into a datetime64[s] is
        # 1970-01-01T00:00:03); zarr-python refuses it with a TypeError.
        raise TypeError(
            f"fill_value {fill_value!r} is {_TIME_KINDS[time_kind][0]}, and a {dtype} array "
            f"holds {_TIME_KINDS[dtype.kind][1]}"
        )
    if dtype is np.dtype(object) and not isinstance(fill_value, None | str | bytes | int):
        # bytes() of a numpy scalar or array is its memory (a float's IEEE bytes, a 0-d text
        # array's UTF-32): zarr-python refuses these for variable-length bytes.
        raise TypeError(
            f"fill_value {fill_value!r} is not bytes, text or an integer, which a "
            "variable-length bytes array takes"
        )
    bad = ValueError(f"fill_value {fill_value!r} is not a valid {dtype}")
    try:
        if dtype.kind == "T" or (dtype.kind == "O" and dtype is not np.dtype(object)):
            return "" if fill_value is None else str(fill_value)
        if dtype.kind == "O":  # variable-length bytes
            if fill_value is None:
                raw = b""
            elif isinstance(fill_value, str):
                raw = fill_value.encode()  # text as its UTF-8, as zarr-python takes it
            else:
                raw = bytes(fill_value)  # an int n is n zero bytes, as zarr-python takes it
            return base64.standard_b64encode(raw).decode()
        if dtype.kind == "b":
            return bool(fill_value) if fill_value is not None else False
        if dtype.kind in "iu":
            if fill_value is None:
                return 0
            if not isinstance(fill_value, int | np.integer) and not float(fill_value).is_integer():
                raise bad
            number = int(fill_value)
            info = np.iinfo(dtype)
            if not info.min <= number <= info.max:
                raise bad
            return number
        # Floats as the data type holds them, as zarr-python stores them: 1e40 is Infinity in
        # a float32, which a reader may refuse as a number out of its range.
        if dtype.kind == "f":
            return _float_json(float(_as_element(0.0 if fill_value is None else fill_value, dtype)))
        if dtype.kind == "c":
            c = complex(_as_element(0 if fill_value is None else fill_value, dtype))
            return [_float_json(c.real), _float_json(c.imag)]
        if dtype.kind in "Mm":
            if fill_value is None:
                return -(2**63)  # NaT
            value = np.array(fill_value, dtype=dtype)
            if value.dtype != dtype:
                # A unitless dtype keeps the value's own unit: its count would be stored
                # as a count of nothing (zarr-python refuses it too).
                raise bad
            given = np.asarray(fill_value)
            if given.dtype.kind in "UO":  # text or a datetime object: in its own unit
                given = np.array(fill_value, dtype=dtype.kind + "8")
            if (
                given.dtype.kind == dtype.kind
                and not np.isnat(given)
                and _finer(dtype, given.dtype)
            ):
                # numpy wraps a time a finer unit cannot reach (the year 3000 in ns) around.
                # (Into a coarser unit it is cut, 0.5 s into seconds, as zarr-python cuts it.)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if value.astype(given.dtype) != given:
                        raise bad
            return int(value.view("i8"))
        if dtype.kind == "U":
            return "" if fill_value is None else str(np.array(fill_value, dtype=dtype)[()])
        # S, V and records: base64 of one element's bytes.
        element = np.zeros((), dtype=dtype)
        if fill_value is not None:
            if dtype.names is not None and isinstance(fill_value, list):
                fill_value = tuple(fill_value)  # one record, as zarr-python reads a list
            element = np.array(fill_value, dtype=dtype)
        if element.shape != ():
            raise bad  # more than one element's worth
        raw = element.tobytes()
        if dtype.kind == "S":
            raw = raw.rstrip(b"\x00")
        return base64.standard_b64encode(raw).decode()
    except (TypeError, ValueError, OverflowError) as e:
        raise bad from e
