//! Elements of numeric data types for the numcodecs filters (delta, fixedscaleoffset,
//! quantize, bitround, astype), with numpy's casts, arithmetic and type promotion, so that
//! encoded chunks match numcodecs' bit for bit.
//!
//! Values are native endian in memory. Loops are generic over the element types and
//! dispatched once per chunk with the `with_*` macros.
//!
//! Casts follow numpy's `astype`: integers wrap, floats round to nearest, floats to integers
//! truncate toward zero. A float out of the integer type's range (or NaN) is undefined in C, and
//! numpy's result depends on the CPU; here it is what x86-64's conversion instructions give,
//! as numpy on x86-64 does (the smallest value of the 32- or 64-bit integer it converts
//! through, then wrapped to the narrower type), so that even such values match numcodecs'
//! output from the machines most Zarr data is written on. numpy's SIMD paths for uint32 and
//! uint64 give other values for some of them.

use half::f16;
use serde_json::{Map, Value};

use crate::array::copy::all_fill_of;
use crate::codec::{invalid_config, ChunkRepr};
use crate::error::MetadataError;
use crate::float16::f16_from_f64;
use crate::metadata::numpy_dtype;
use crate::metadata::DataType;

/// A numeric data type the filters work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Num {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    F32,
    F64,
}

impl Num {
    pub fn of(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Bool => Self::Bool,
            DataType::Int8 => Self::I8,
            DataType::Int16 => Self::I16,
            DataType::Int32 => Self::I32,
            DataType::Int64 => Self::I64,
            DataType::UInt8 => Self::U8,
            DataType::UInt16 => Self::U16,
            DataType::UInt32 => Self::U32,
            DataType::UInt64 => Self::U64,
            DataType::Float16 => Self::F16,
            DataType::Float32 => Self::F32,
            DataType::Float64 => Self::F64,
            _ => return None,
        })
    }

    pub fn data_type(self) -> DataType {
        match self {
            Self::Bool => DataType::Bool,
            Self::I8 => DataType::Int8,
            Self::I16 => DataType::Int16,
            Self::I32 => DataType::Int32,
            Self::I64 => DataType::Int64,
            Self::U8 => DataType::UInt8,
            Self::U16 => DataType::UInt16,
            Self::U32 => DataType::UInt32,
            Self::U64 => DataType::UInt64,
            Self::F16 => DataType::Float16,
            Self::F32 => DataType::Float32,
            Self::F64 => DataType::Float64,
        }
    }

    pub fn size(self) -> usize {
        self.data_type().size()
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F16 | Self::F32 | Self::F64)
    }

    fn is_signed(self) -> bool {
        matches!(self, Self::I8 | Self::I16 | Self::I32 | Self::I64)
    }

    fn signed_of_size(size: usize) -> Self {
        match size {
            1 => Self::I8,
            2 => Self::I16,
            4 => Self::I32,
            8 => Self::I64,
            _ => Self::F64,
        }
    }

    fn float_of_size(size: usize) -> Self {
        match size {
            2 => Self::F16,
            4 => Self::F32,
            _ => Self::F64,
        }
    }

    /// numpy's `promote_types(a, b)`: the type a ufunc over both computes in.
    pub fn promote(a: Self, b: Self) -> Self {
        if a == b || b == Self::Bool {
            return a;
        }
        if a == Self::Bool {
            return b;
        }
        match (a.is_float(), b.is_float()) {
            (true, true) => Self::float_of_size(a.size().max(b.size())),
            (true, false) | (false, true) => {
                let (float, int) = if a.is_float() { (a, b) } else { (b, a) };
                // The smallest float that holds the integers' values: 1-byte integers fit in
                // a half, 2-byte in a single, wider ones only in a double.
                let needed = match int.size() {
                    1 => 2,
                    2 => 4,
                    _ => 8,
                };
                Self::float_of_size(float.size().max(needed))
            }
            (false, false) if a.is_signed() == b.is_signed() => {
                if a.size() >= b.size() {
                    a
                } else {
                    b
                }
            }
            (false, false) => {
                let (signed, unsigned) = if a.is_signed() { (a, b) } else { (b, a) };
                if signed.size() > unsigned.size() {
                    signed
                } else {
                    // Twice the unsigned width; none is wider than i64, so float64.
                    Self::signed_of_size(2 * unsigned.size())
                }
            }
        }
    }
}

/// A numpy dtype given in a codec's configuration (`dtype`, `astype`, ...): its numeric type,
/// and the JSON as written, which is written back unchanged. Byte order is ignored: filters
/// see native-endian values.
#[derive(Debug, Clone)]
pub(crate) struct DtypeField {
    pub num: Num,
    pub json: Value,
}

impl DtypeField {
    /// The field for a type, written as numcodecs writes dtypes (`"<i4"`, native order).
    pub fn native(num: Num) -> Self {
        Self {
            num,
            json: numpy_dtype::to_value(&num.data_type(), cfg!(target_endian = "big")),
        }
    }

    /// Parses a numpy dtype string: a name (`"float64"`, as zarr-python writes what it fills
    /// in) or a type string (`"<f8"`, as numcodecs writes). `None` if it is not numeric.
    pub fn parse(value: &Value) -> Option<Self> {
        let s = value.as_str()?;
        let data_type = match DataType::from_name(s) {
            Some(dt) => dt,
            None => numpy_dtype::parse(value).ok()?.data_type,
        };
        Some(Self {
            num: Num::of(&data_type)?,
            json: value.clone(),
        })
    }
}

/// The dtype under `key` in a codec's configuration; `None` if absent or null.
pub(crate) fn dtype_config(
    codec: &str,
    config: &Map<String, Value>,
    key: &str,
) -> Result<Option<DtypeField>, MetadataError> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => DtypeField::parse(v).map(Some).ok_or_else(|| {
            invalid_config(
                codec,
                key,
                v,
                "expected the numpy dtype of a boolean, integer or float (e.g. \"<f8\", \"int32\")",
            )
        }),
    }
}

/// The dtype of the decoded values under `key`, which must be the chunk's data type (the
/// chunk's data type when the configuration leaves it out, as zarr-python fills it in).
pub(crate) fn decoded_dtype(
    codec: &str,
    config: &Map<String, Value>,
    key: &str,
    chunk: &DataType,
) -> Result<DtypeField, MetadataError> {
    let chunk_num = Num::of(chunk);
    match dtype_config(codec, config, key)? {
        Some(field) if Some(field.num) == chunk_num => Ok(field),
        Some(field) => Err(invalid_config(
            codec,
            key,
            &field.json,
            &format!("the chunks' data type is {chunk}"),
        )),
        None => chunk_num
            .map(DtypeField::native)
            .ok_or_else(|| unsupported_type(codec, chunk)),
    }
}

/// The error for a data type a filter does not work on.
pub(crate) fn unsupported_type(codec: &str, data_type: &DataType) -> MetadataError {
    MetadataError::Unsupported {
        field: format!("codecs[{codec}]"),
        value: format!("on {data_type} data"),
    }
}

/// A value on its way between element types.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val {
    I(i64),
    U(u64),
    F(f64),
}

impl Val {
    /// A JSON number as Python sees it: an int or a float.
    pub fn from_json(v: &Value) -> Option<Self> {
        let n = v.as_number()?;
        if let Some(i) = n.as_i64() {
            Some(Self::I(i))
        } else if let Some(u) = n.as_u64() {
            Some(Self::U(u))
        } else {
            Some(Self::F(crate::metadata::json::number_as_f64(n)))
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F(_))
    }
}

/// One element type.
pub(crate) trait Element: Copy + Send + Sync + 'static {
    const SIZE: usize;
    fn load(bytes: &[u8]) -> Self;
    fn store(self, bytes: &mut [u8]);
    fn to_val(self) -> Val;
    fn from_val(v: Val) -> Self;
}

/// Arithmetic as numpy does it in the element type: integers wrap.
pub(crate) trait Arith: Element {
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
}

/// Float arithmetic numpy has beyond `Arith`.
pub(crate) trait Float: Arith {
    fn div(self, other: Self) -> Self;
    /// `numpy.rint`: to the nearest integer, ties to even.
    fn rint(self) -> Self;
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&bytes[..N]);
    a
}

/// A float to i32 as x86-64's `cvttsd2si` does: the smallest i32 when out of range or NaN.
/// numpy converts to integers of 4 bytes or fewer through it.
fn float_to_i32(f: f64) -> i32 {
    if f > -2_147_483_649.0 && f < 2_147_483_648.0 {
        f as i32
    } else {
        i32::MIN
    }
}

/// A float to i64 as x86-64's 64-bit `cvttsd2si` does (uint32 goes through it too).
fn float_to_i64(f: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        f as i64
    } else {
        i64::MIN
    }
}

/// A float to u64 as compilers do on x86-64: values from 2^63 up are offset into i64 range.
fn float_to_u64(f: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (TWO_63..2.0 * TWO_63).contains(&f) {
        float_to_i64(f - TWO_63) as u64 | (1 << 63)
    } else {
        float_to_i64(f) as u64
    }
}

macro_rules! int_element {
    ($t:ty, $variant:ident, $from_float:expr) => {
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn load(bytes: &[u8]) -> Self {
                <$t>::from_ne_bytes(array(bytes))
            }
            fn store(self, bytes: &mut [u8]) {
                bytes[..Self::SIZE].copy_from_slice(&self.to_ne_bytes());
            }
            fn to_val(self) -> Val {
                Val::$variant(self as _)
            }
            fn from_val(v: Val) -> Self {
                match v {
                    Val::I(i) => i as $t,
                    Val::U(u) => u as $t,
                    Val::F(f) => $from_float(f) as $t,
                }
            }
        }

        impl Arith for $t {
            fn add(self, other: Self) -> Self {
                self.wrapping_add(other)
            }
            fn sub(self, other: Self) -> Self {
                self.wrapping_sub(other)
            }
            fn mul(self, other: Self) -> Self {
                self.wrapping_mul(other)
            }
        }
    };
}

int_element!(i8, I, float_to_i32);
int_element!(i16, I, float_to_i32);
int_element!(i32, I, float_to_i32);
int_element!(i64, I, float_to_i64);
int_element!(u8, U, float_to_i32);
int_element!(u16, U, float_to_i32);
int_element!(u32, U, float_to_i64);
int_element!(u64, U, float_to_u64);

impl Element for bool {
    const SIZE: usize = 1;
    fn load(bytes: &[u8]) -> Self {
        bytes[0] != 0
    }
    fn store(self, bytes: &mut [u8]) {
        bytes[0] = self as u8;
    }
    fn to_val(self) -> Val {
        Val::I(self as i64)
    }
    fn from_val(v: Val) -> Self {
        match v {
            Val::I(i) => i != 0,
            Val::U(u) => u != 0,
            // NaN is true, as in numpy.
            Val::F(f) => f != 0.0,
        }
    }
}

/// numpy's bool arithmetic (logical or / and); the filters refuse bool before computing.
impl Arith for bool {
    fn add(self, other: Self) -> Self {
        self | other
    }
    fn sub(self, other: Self) -> Self {
        self ^ other
    }
    fn mul(self, other: Self) -> Self {
        self & other
    }
}

macro_rules! float_element {
    ($t:ty) => {
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn load(bytes: &[u8]) -> Self {
                <$t>::from_ne_bytes(array(bytes))
            }
            fn store(self, bytes: &mut [u8]) {
                bytes[..Self::SIZE].copy_from_slice(&self.to_ne_bytes());
            }
            fn to_val(self) -> Val {
                Val::F(self as f64)
            }
            fn from_val(v: Val) -> Self {
                match v {
                    Val::I(i) => i as $t,
                    Val::U(u) => u as $t,
                    Val::F(f) => f as $t,
                }
            }
        }

        impl Arith for $t {
            fn add(self, other: Self) -> Self {
                self + other
            }
            fn sub(self, other: Self) -> Self {
                self - other
            }
            fn mul(self, other: Self) -> Self {
                self * other
            }
        }

        impl Float for $t {
            fn div(self, other: Self) -> Self {
                self / other
            }
            fn rint(self) -> Self {
                self.round_ties_even()
            }
        }
    };
}

float_element!(f32);
float_element!(f64);

impl Element for f16 {
    const SIZE: usize = 2;
    fn load(bytes: &[u8]) -> Self {
        f16::from_ne_bytes(array(bytes))
    }
    fn store(self, bytes: &mut [u8]) {
        bytes[..2].copy_from_slice(&self.to_ne_bytes());
    }
    fn to_val(self) -> Val {
        Val::F(self.to_f64())
    }
    fn from_val(v: Val) -> Self {
        // Rounded once, as numpy rounds (half's from_f64 rounds twice).
        match v {
            Val::I(i) => f16_from_f64(i as f64),
            Val::U(u) => f16_from_f64(u as f64),
            Val::F(f) => f16_from_f64(f),
        }
    }
}

/// numpy computes half-precision operations in single precision, rounding each result.
impl Arith for f16 {
    fn add(self, other: Self) -> Self {
        f16::from_f32(self.to_f32() + other.to_f32())
    }
    fn sub(self, other: Self) -> Self {
        f16::from_f32(self.to_f32() - other.to_f32())
    }
    fn mul(self, other: Self) -> Self {
        f16::from_f32(self.to_f32() * other.to_f32())
    }
}

impl Float for f16 {
    fn div(self, other: Self) -> Self {
        f16::from_f32(self.to_f32() / other.to_f32())
    }
    fn rint(self) -> Self {
        f16::from_f32(self.to_f32().round_ties_even())
    }
}

/// Runs `$body` with `$T` the Rust type of the numeric type `$num`.
macro_rules! with_num {
    ($num:expr, $T:ident => $body:expr) => {{
        use $crate::codec::array_to_array::numeric::Num;
        match $num {
            Num::Bool => {
                type $T = bool;
                $body
            }
            Num::I8 => {
                type $T = i8;
                $body
            }
            Num::I16 => {
                type $T = i16;
                $body
            }
            Num::I32 => {
                type $T = i32;
                $body
            }
            Num::I64 => {
                type $T = i64;
                $body
            }
            Num::U8 => {
                type $T = u8;
                $body
            }
            Num::U16 => {
                type $T = u16;
                $body
            }
            Num::U32 => {
                type $T = u32;
                $body
            }
            Num::U64 => {
                type $T = u64;
                $body
            }
            Num::F16 => {
                type $T = half::f16;
                $body
            }
            Num::F32 => {
                type $T = f32;
                $body
            }
            Num::F64 => {
                type $T = f64;
                $body
            }
        }
    }};
}

/// Runs `$body` with `$T` the float type numpy computes in for true division and rounding of
/// `$num` values: the type itself for floats, float64 for the others.
macro_rules! with_float {
    ($num:expr, $T:ident => $body:expr) => {{
        use $crate::codec::array_to_array::numeric::Num;
        match $num {
            Num::F16 => {
                type $T = half::f16;
                $body
            }
            Num::F32 => {
                type $T = f32;
                $body
            }
            _ => {
                type $T = f64;
                $body
            }
        }
    }};
}

pub(crate) use {with_float, with_num};

fn cast_typed<S: Element, D: Element>(src: &[u8], dst: &mut [u8]) {
    for (s, d) in src.chunks_exact(S::SIZE).zip(dst.chunks_exact_mut(D::SIZE)) {
        D::from_val(S::load(s).to_val()).store(d);
    }
}

/// Casts the elements of `src` (type `from`) into `dst` (type `to`), as numpy's `astype`.
pub(crate) fn cast_into(src: &[u8], from: Num, dst: &mut [u8], to: Num) {
    if from == to {
        dst.copy_from_slice(src);
        return;
    }
    with_num!(from, S => with_num!(to, D => cast_typed::<S, D>(src, dst)))
}

/// The representation an array->array codec making elements of type `to` (of `shape`) from
/// `decoded`'s hands on, as zarr-python makes it: the fill value is the decoded one cast to
/// `to`, not run through the codec (a sharding codec after it leaves out inner chunks of that
/// value, and zarr-python reads them back as it). It is exact where casting it back gives
/// the decoded one again.
pub(crate) fn cast_repr(decoded: &ChunkRepr, shape: Vec<u64>, from: Num, to: Num) -> ChunkRepr {
    let fill = cast(&decoded.fill_value, from, to);
    let back = cast(&fill, to, from);
    let mut repr = ChunkRepr::with_fill(shape, to.data_type(), &fill);
    repr.fill_is_exact =
        decoded.fill_is_exact && all_fill_of(&back, &decoded.fill_value, &from.data_type());
    repr
}

/// `src` (type `from`) cast to `to`, in a new buffer.
pub(crate) fn cast(src: &[u8], from: Num, to: Num) -> Vec<u8> {
    let mut out = vec![0u8; src.len() / from.size() * to.size()];
    cast_into(src, from, &mut out, to);
    out
}

/// Applies `f` to every element of `buf` in place.
pub(crate) fn map_in_place<T: Element>(buf: &mut [u8], mut f: impl FnMut(T) -> T) {
    for b in buf.chunks_exact_mut(T::SIZE) {
        f(T::load(b)).store(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn promotion_is_numpys() {
        use Num::*;
        // numpy.promote_types for each pair.
        let cases = [
            (F16, I16, F32),
            (F16, U8, F16),
            (F16, I32, F64),
            (F32, I32, F64),
            (F32, U16, F32),
            (U64, I64, F64),
            (U32, I16, I64),
            (U8, I8, I16),
            (U16, I32, I32),
            (I8, I64, I64),
            (U8, U32, U32),
            (F32, F64, F64),
            (Bool, U8, U8),
            (Bool, F16, F16),
        ];
        for (a, b, expected) in cases {
            assert_eq!(Num::promote(a, b), expected, "{a:?} {b:?}");
            assert_eq!(Num::promote(b, a), expected, "{b:?} {a:?}");
        }
    }

    #[test]
    fn casts_are_numpys() {
        let floats = [
            300.0f64,
            -1.0,
            1e10,
            f64::NAN,
            -129.0,
            3e9,
            -3e9,
            1e20,
            -1e20,
            f64::INFINITY,
            2.7,
            -2.7,
        ];
        let f64s: Vec<u8> = floats.iter().flat_map(|f| f.to_ne_bytes()).collect();
        let ints = |num: Num| -> Vec<i128> {
            let out = cast(&f64s, Num::F64, num);
            with_num!(num, T => out
                .chunks_exact(num.size())
                .map(|b| match T::load(b).to_val() {
                    Val::I(i) => i as i128,
                    Val::U(u) => u as i128,
                    Val::F(_) => unreachable!(),
                })
                .collect())
        };
        // np.array([300.0, -1.0, 1e10, nan, -129.0, 3e9, -3e9, 1e20, -1e20, inf, 2.7, -2.7])
        // .astype(t), numpy 2.4 on x86-64.
        assert_eq!(ints(Num::U8), [44, 255, 0, 0, 127, 0, 0, 0, 0, 0, 2, 254]);
        assert_eq!(ints(Num::I8), [44, -1, 0, 0, 127, 0, 0, 0, 0, 0, 2, -2]);
        assert_eq!(ints(Num::I16), [300, -1, 0, 0, -129, 0, 0, 0, 0, 0, 2, -2]);
        assert_eq!(
            ints(Num::U16),
            [300, 65535, 0, 0, 65407, 0, 0, 0, 0, 0, 2, 65534]
        );
        let min32 = i32::MIN as i128;
        assert_eq!(
            ints(Num::I32),
            [300, -1, min32, min32, -129, min32, min32, min32, min32, min32, 2, -2]
        );
        let min64 = i64::MIN as i128;
        assert_eq!(
            ints(Num::I64),
            [
                300,
                -1,
                10_000_000_000,
                min64,
                -129,
                3_000_000_000,
                -3_000_000_000,
                min64,
                min64,
                min64,
                2,
                -2
            ]
        );
        let bools = cast(&f64s, Num::F64, Num::Bool);
        assert_eq!(bools, vec![1; floats.len()]);
        let i16s: Vec<u8> = [-1i16, 300].iter().flat_map(|i| i.to_ne_bytes()).collect();
        assert_eq!(cast(&i16s, Num::I16, Num::U8), vec![255, 44]);
        let back = cast(&cast(&i16s, Num::I16, Num::F16), Num::F16, Num::I16);
        assert_eq!(back, i16s);
        // float64 -> float16 rounds once, to nearest even (2049 is halfway to 2048 / 2050).
        let h = cast(&2049.0f64.to_ne_bytes(), Num::F64, Num::F16);
        assert_eq!(f16::from_ne_bytes([h[0], h[1]]).to_f64(), 2048.0);
    }

    #[test]
    fn dtype_fields() {
        for (s, num) in [
            ("float64", Num::F64),
            ("<f8", Num::F64),
            (">i2", Num::I16),
            ("|u1", Num::U8),
            ("bool", Num::Bool),
            ("f2", Num::F16),
        ] {
            assert_eq!(DtypeField::parse(&json!(s)).unwrap().num, num, "{s}");
        }
        for bad in [
            json!("complex64"),
            json!("<M8[s]"),
            json!("|S3"),
            json!(4),
            json!("x"),
        ] {
            assert!(DtypeField::parse(&bad).is_none(), "{bad}");
        }
        let native = DtypeField::native(Num::I32);
        assert_eq!(
            native.json,
            if cfg!(target_endian = "big") {
                json!(">i4")
            } else {
                json!("<i4")
            }
        );
        assert!(matches!(Val::from_json(&json!(3)), Some(Val::I(3))));
        assert!(matches!(Val::from_json(&json!(3.0)), Some(Val::F(_))));
        assert!(matches!(Val::from_json(&json!(u64::MAX)), Some(Val::U(_))));
        assert!(Val::from_json(&json!("3")).is_none());
    }
}
