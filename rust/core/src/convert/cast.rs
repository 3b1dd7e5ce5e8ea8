//! Element-wise conversion between numeric data types, as numpy's `astype` does it for values
//! the target type can hold: integers wrap, floats round to nearest, floats to integers
//! truncate toward zero (out-of-range floats, which numpy leaves undefined, saturate here), and
//! anything to bool is "not zero" (NaN included).

use half::f16;

use crate::float16::f16_from_f64;
use num_traits::AsPrimitive;

use crate::error::{Error, Result};
use crate::metadata::DataType;

/// Whether values of `from` can be converted to `to` here. Complex values convert to the
/// other complex type; real ones to complex with a zero imaginary part; complex to real is
/// refused (numpy drops the imaginary part, with a warning, which a conversion must not).
pub fn can_cast(from: &DataType, to: &DataType) -> bool {
    from.same_in_memory(to)
        || (is_numeric(from) && (is_numeric(to) || is_complex(to)))
        || (is_complex(from) && is_complex(to))
}

fn is_complex(t: &DataType) -> bool {
    matches!(t, DataType::Complex64 | DataType::Complex128)
}

fn is_numeric(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Bool
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float16
            | DataType::Float32
            | DataType::Float64
    )
}

/// Native-endian elements of `T` in `bytes` (which need not be aligned).
fn read<T: Copy>(bytes: &[u8]) -> impl Iterator<Item = T> + '_ {
    bytes
        .chunks_exact(size_of::<T>())
        // SAFETY: each chunk holds exactly size_of::<T>() bytes, read unaligned; T is a
        // plain number type, valid for any bit pattern.
        .map(|b| unsafe { std::ptr::read_unaligned(b.as_ptr().cast::<T>()) })
}

fn write<T: Copy>(out: &mut [u8], values: impl Iterator<Item = T>) {
    for (o, v) in out.chunks_exact_mut(size_of::<T>()).zip(values) {
        // SAFETY: each chunk holds exactly size_of::<T>() bytes, written unaligned.
        unsafe { std::ptr::write_unaligned(o.as_mut_ptr().cast::<T>(), v) }
    }
}

/// Converts to `D`, read as `S`; bool reads as u8 (0 or 1) and is written by `to_bool`.
fn convert<S, D>(src: &[u8], dst: &mut [u8])
where
    S: AsPrimitive<D>,
    D: Copy + 'static,
{
    write::<D>(dst, read::<S>(src).map(|v| v.as_()));
}

/// Halves are made through f64, rounded once (`f16_from_f64`: half's own conversion rounds
/// twice). Every source type reaches f64 exactly, but for integers past 2^53, which are past
/// a half's range either way.
fn to_f16<S: AsPrimitive<f64>>(src: &[u8], dst: &mut [u8]) {
    write::<f16>(dst, read::<S>(src).map(|v| f16_from_f64(v.as_())));
}

fn to_bool<S: AsPrimitive<f64>>(src: &[u8], dst: &mut [u8]) {
    // Through f64, which keeps every value's zeroness and NaN.
    write::<u8>(dst, read::<S>(src).map(|v| u8::from(v.as_() != 0.0)));
}

macro_rules! from_source {
    ($S:ty, $src_type:expr, $to:expr, $src:expr, $dst:expr) => {
        match $to {
            DataType::Bool => to_bool::<$S>($src, $dst),
            DataType::Int8 => convert::<$S, i8>($src, $dst),
            DataType::Int16 => convert::<$S, i16>($src, $dst),
            DataType::Int32 => convert::<$S, i32>($src, $dst),
            DataType::Int64 => convert::<$S, i64>($src, $dst),
            DataType::UInt8 => convert::<$S, u8>($src, $dst),
            DataType::UInt16 => convert::<$S, u16>($src, $dst),
            DataType::UInt32 => convert::<$S, u32>($src, $dst),
            DataType::UInt64 => convert::<$S, u64>($src, $dst),
            DataType::Float16 => to_f16::<$S>($src, $dst),
            DataType::Float32 => convert::<$S, f32>($src, $dst),
            DataType::Float64 => convert::<$S, f64>($src, $dst),
            // can_cast let through only the types above; an error rather than a panic all
            // the same.
            _ => return Err(unsupported($src_type, $to)),
        }
    };
}

fn unsupported(from: &DataType, to: &DataType) -> Error {
    Error::InvalidArgument(format!("cannot convert {from} values to {to}"))
}

/// Converts the elements of `src` (of `from`) into `dst` (of `to`), both native endian and
/// holding the same number of elements.
pub fn cast(from: &DataType, to: &DataType, src: &[u8], dst: &mut [u8]) -> Result<()> {
    if !can_cast(from, to) {
        return Err(unsupported(from, to));
    }
    if src.len() / from.size().max(1) != dst.len() / to.size().max(1) {
        return Err(Error::InvalidArgument(format!(
            "{} bytes of {from} do not make {} bytes of {to}",
            src.len(),
            dst.len()
        )));
    }
    if from.same_in_memory(to) {
        dst.copy_from_slice(src);
        return Ok(());
    }
    if is_complex(to) {
        // Real and imaginary parts are floats of half the element's size: the real part is
        // converted as to that float, the imaginary part is zero (or converted alike).
        let (part, part_size) = match to {
            DataType::Complex64 => (DataType::Float32, 4),
            _ => (DataType::Float64, 8),
        };
        let n = dst.len() / to.size();
        let mut parts = vec![0u8; n * part_size * 2];
        if is_complex(from) {
            let from_part = match from {
                DataType::Complex64 => DataType::Float32,
                _ => DataType::Float64,
            };
            cast(&from_part, &part, src, &mut parts)?;
        } else {
            let mut real = vec![0u8; n * part_size];
            cast(from, &part, src, &mut real)?;
            for (pair, re) in parts
                .chunks_exact_mut(2 * part_size)
                .zip(real.chunks_exact(part_size))
            {
                pair[..part_size].copy_from_slice(re);
            }
        }
        dst.copy_from_slice(&parts);
        return Ok(());
    }
    match from {
        DataType::Bool | DataType::UInt8 => from_source!(u8, from, to, src, dst),
        DataType::Int8 => from_source!(i8, from, to, src, dst),
        DataType::Int16 => from_source!(i16, from, to, src, dst),
        DataType::Int32 => from_source!(i32, from, to, src, dst),
        DataType::Int64 => from_source!(i64, from, to, src, dst),
        DataType::UInt16 => from_source!(u16, from, to, src, dst),
        DataType::UInt32 => from_source!(u32, from, to, src, dst),
        DataType::UInt64 => from_source!(u64, from, to, src, dst),
        DataType::Float16 => from_source!(f16, from, to, src, dst),
        DataType::Float32 => from_source!(f32, from, to, src, dst),
        DataType::Float64 => from_source!(f64, from, to, src, dst),
        _ => return Err(unsupported(from, to)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: Copy>(values: &[T]) -> Vec<u8> {
        let mut out = vec![0u8; size_of_val(values)];
        write(&mut out, values.iter().copied());
        out
    }

    fn values<T: Copy>(b: &[u8]) -> Vec<T> {
        read::<T>(b).collect()
    }

    fn run(from: DataType, to: DataType, src: &[u8], n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n * to.size()];
        cast(&from, &to, src, &mut out).unwrap();
        out
    }

    #[test]
    fn floats_to_integers_truncate_and_integers_wrap() {
        let out = run(
            DataType::Float64,
            DataType::Int16,
            &bytes(&[1.9f64, -2.7, 300.0]),
            3,
        );
        assert_eq!(values::<i16>(&out), [1, -2, 300]);
        let out = run(
            DataType::Int32,
            DataType::UInt8,
            &bytes(&[257i32, -1, 7]),
            3,
        );
        assert_eq!(values::<u8>(&out), [1, 255, 7]);
    }

    #[test]
    fn to_bool_is_not_zero_and_bool_reads_as_one() {
        let out = run(
            DataType::Float32,
            DataType::Bool,
            &bytes(&[0.0f32, -0.0, f32::NAN, 2.5]),
            4,
        );
        assert_eq!(out, [0, 0, 1, 1]);
        let out = run(DataType::Bool, DataType::Float32, &[1, 0], 2);
        assert_eq!(values::<f32>(&out), [1.0, 0.0]);
    }

    #[test]
    fn half_precision_rounds_to_nearest() {
        let out = run(
            DataType::Float32,
            DataType::Float16,
            &bytes(&[1.0f32, 65504.0, 0.1]),
            3,
        );
        let got: Vec<f32> = values::<f16>(&out).into_iter().map(f32::from).collect();
        assert_eq!(got, [1.0, 65504.0, f32::from(f16::from_f32(0.1))]);
        // From f64, rounded once, as numpy's astype: through f32 (half's from_f64 where the
        // CPU converts halves) 1 + 2^-11 + 2^-40 lost its 2^-40 and fell to 1.0 on the tie.
        let just_above_a_tie = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        for from in [DataType::Float64, DataType::Float32] {
            let given = [just_above_a_tie, -0.17791747913638098, 3502.9999059102206];
            let src: Vec<u8> = if from == DataType::Float64 {
                bytes(&given)
            } else {
                bytes(&given.map(|v| v as f32))
            };
            let out = run(from.clone(), DataType::Float16, &src, 3);
            let bits: Vec<u16> = values::<f16>(&out).into_iter().map(f16::to_bits).collect();
            // numpy: np.array(values).astype("f2").view("u2"), and from float32 first.
            let expected = if from == DataType::Float64 {
                [0x3c01, 0xb1b1, 0x6ad7]
            } else {
                [0x3c00, 0xb1b2, 0x6ad8]
            };
            assert_eq!(bits, expected, "{from}");
        }
    }

    #[test]
    fn complex_widens_narrows_and_takes_reals() {
        let out = run(
            DataType::Complex64,
            DataType::Complex128,
            &bytes(&[1.5f32, -2.0, f32::NAN, 0.25]),
            2,
        );
        let got = values::<f64>(&out);
        assert_eq!((got[0], got[1], got[3]), (1.5, -2.0, 0.25));
        assert!(got[2].is_nan());
        let out = run(DataType::Int16, DataType::Complex64, &bytes(&[-3i16, 7]), 2);
        assert_eq!(values::<f32>(&out), [-3.0, 0.0, 7.0, 0.0]);
    }

    #[test]
    fn non_numeric_types_convert_only_to_themselves() {
        assert!(can_cast(&DataType::String, &DataType::String));
        assert!(!can_cast(&DataType::Complex64, &DataType::Float32));
        let mut out = [0u8; 8];
        assert!(cast(&DataType::Complex64, &DataType::Float64, &[0; 8], &mut out).is_err());
    }
}
