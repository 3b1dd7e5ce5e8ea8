//! Orthogonal selections and how they meet the chunk grid.
//!
//! A selection picks, in every dimension independently, a list of indices: a slice with any
//! non-zero step, or an arbitrary list (repeats and any order allowed). The selected elements
//! form the output, in C order, shaped by the number of indices per dimension. Along each
//! dimension, the selection splits into pieces, one per chunk it touches; a chunk's share of
//! the work is one piece per dimension.

use crate::error::{Error, Result};

/// One dimension of an orthogonal selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimSelection {
    /// `len` indices `start, start + step, …` (`step` may be negative, never 0).
    Slice { start: u64, step: i64, len: u64 },
    /// Arbitrary indices, in output order.
    Indices(Vec<u64>),
}

impl DimSelection {
    /// The whole of a dimension of length `n`.
    pub fn all(n: u64) -> Self {
        Self::Slice {
            start: 0,
            step: 1,
            len: n,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Self::Slice { len, .. } => *len,
            Self::Indices(v) => v.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self, dim: usize, extent: u64) -> Result<()> {
        let bad = |index: i128| {
            Error::OutOfBounds(format!(
                "index {index} is out of bounds for dimension {dim} with length {extent}"
            ))
        };
        match self {
            Self::Slice { start, step, len } => {
                if *step == 0 {
                    return Err(Error::InvalidArgument("slice step cannot be zero".into()));
                }
                if *len == 0 {
                    return Ok(());
                }
                let last = *start as i128 + (*len as i128 - 1) * *step as i128;
                for index in [*start as i128, last] {
                    if index < 0 || index >= extent as i128 {
                        return Err(bad(index));
                    }
                }
            }
            Self::Indices(v) => {
                if let Some(&i) = v.iter().find(|&&i| i >= extent) {
                    return Err(bad(i as i128));
                }
            }
        }
        Ok(())
    }
}

/// How the selection along one dimension meets one chunk along that dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimPiece {
    /// The chunk's index along the dimension.
    pub chunk: u64,
    pub map: PieceMap,
}

/// Which output positions come from which positions within the chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceMap {
    /// Output positions `out_start..out_start + len` come from chunk positions
    /// `chunk_start + j * step`.
    Run {
        out_start: u64,
        chunk_start: u64,
        step: i64,
        len: u64,
    },
    /// `(output position, chunk position)` pairs.
    Pairs(Vec<(u64, u64)>),
}

impl PieceMap {
    /// Number of output positions.
    pub fn len(&self) -> u64 {
        match self {
            Self::Run { len, .. } => *len,
            Self::Pairs(p) => p.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lowest and highest chunk positions the piece reads (`None` if it is empty).
    pub fn chunk_bounds(&self) -> Option<(u64, u64)> {
        match self {
            Self::Run { len: 0, .. } => None,
            Self::Run {
                chunk_start,
                step,
                len,
                ..
            } => {
                let end = *chunk_start as i64 + (*len as i64 - 1) * step;
                let end = end.max(0) as u64;
                Some((end.min(*chunk_start), end.max(*chunk_start)))
            }
            Self::Pairs(pairs) => {
                let lo = pairs.iter().map(|p| p.1).min()?;
                let hi = pairs.iter().map(|p| p.1).max()?;
                Some((lo, hi))
            }
        }
    }

    /// Whether the piece reads any chunk position in `part`.
    pub fn touches(&self, part: &std::ops::Range<u64>) -> bool {
        match self {
            Self::Run { len: 0, .. } => false,
            Self::Run { step, len, .. } => {
                // As an ascending run: from its lowest position, by the step's size.
                let step = step.unsigned_abs().max(1);
                let Some((lowest, _)) = self.chunk_bounds() else {
                    return false;
                };
                let k = part.start.saturating_sub(lowest).div_ceil(step);
                k < *len && lowest + k * step < part.end
            }
            Self::Pairs(pairs) => pairs.iter().any(|&(_, c)| part.contains(&c)),
        }
    }

    /// Whether the piece covers chunk positions `0..extent` exactly once, in order, with
    /// consecutive output positions.
    pub fn is_whole(&self, extent: u64) -> bool {
        matches!(self, Self::Run { chunk_start: 0, step: 1, len, .. } if *len == extent)
    }

    /// Whether every chunk position in `0..extent` is written by this piece.
    pub fn covers(&self, extent: u64) -> bool {
        match self {
            // The run's positions are distinct and inside the chunk's part of the array, so
            // it covers that part when it has as many of them and leaves no gaps.
            Self::Run { step, len, .. } => {
                *len == extent && (step.unsigned_abs() == 1 || *len <= 1)
            }
            Self::Pairs(pairs) => {
                let mut seen = vec![false; extent as usize];
                for &(_, c) in pairs {
                    if let Some(s) = seen.get_mut(c as usize) {
                        *s = true;
                    }
                }
                seen.iter().all(|&s| s)
            }
        }
    }

    /// Whether the maps of a write's share of a chunk (one per dimension) write every element
    /// of the chunk inside the array (`extent`, the chunk's part of it; `chunk_shape`, the
    /// chunk's): then the chunk is made anew rather than merged with what is stored. In a
    /// chunk at the array's edge, index lists (oindex, masks, points) merge, as zarr-python
    /// replaces a chunk only for slices covering it: values a shrink left past the edge stay,
    /// and come back if the array grows again, as they do in zarr-python.
    pub fn cover_chunk<'a>(
        maps: impl IntoIterator<Item = &'a PieceMap>,
        extent: &[u64],
        chunk_shape: &[u64],
    ) -> bool {
        let at_edge = extent.iter().zip(chunk_shape).any(|(e, c)| e < c);
        maps.into_iter()
            .zip(extent)
            .all(|(m, &e)| !(at_edge && matches!(m, Self::Pairs(_))) && m.covers(e))
    }

    /// The first output position (the pieces of a Run start here).
    pub fn out_start(&self) -> u64 {
        match self {
            Self::Run { out_start, .. } => *out_start,
            Self::Pairs(p) => p.first().map_or(0, |p| p.0),
        }
    }
}

/// An orthogonal selection of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection(pub Vec<DimSelection>);

impl Selection {
    /// The whole of an array of `shape`.
    pub fn all(shape: &[u64]) -> Self {
        Self(shape.iter().map(|&n| DimSelection::all(n)).collect())
    }

    /// The shape of the selected region.
    pub fn shape(&self) -> Vec<u64> {
        self.0.iter().map(DimSelection::len).collect()
    }

    /// Saturating: a damaged shape's lengths can multiply past u64 (the product would
    /// panic, or wrap to a small count).
    pub fn num_elements(&self) -> u64 {
        self.0
            .iter()
            .map(DimSelection::len)
            .fold(1u64, u64::saturating_mul)
    }

    /// Checks the selection against an array's shape.
    pub fn check(&self, shape: &[u64]) -> Result<()> {
        if self.0.len() != shape.len() {
            return Err(Error::OutOfBounds(format!(
                "too many indices for array: array is {}-dimensional, but {} were indexed",
                shape.len(),
                self.0.len()
            )));
        }
        for (d, (sel, &n)) in self.0.iter().zip(shape).enumerate() {
            sel.check(d, n)?;
        }
        Ok(())
    }

    /// The pieces of each dimension, for chunks of `chunk_shape`.
    pub fn pieces(&self, chunk_shape: &[u64]) -> Vec<Vec<DimPiece>> {
        self.0
            .iter()
            .zip(chunk_shape)
            .map(|(sel, &c)| dim_pieces(sel, c))
            .collect()
    }
}

/// Splits one dimension's selection by chunks of length `chunk_len`.
pub fn dim_pieces(sel: &DimSelection, chunk_len: u64) -> Vec<DimPiece> {
    match sel {
        DimSelection::Slice { start, step, len } => {
            let mut pieces = Vec::new();
            let mut j = 0u64;
            while j < *len {
                let index = (*start as i128 + j as i128 * *step as i128) as u64;
                let chunk = index / chunk_len;
                let in_chunk = index - chunk * chunk_len;
                let stride = step.unsigned_abs();
                let count = if *step > 0 {
                    (chunk_len - 1 - in_chunk) / stride + 1
                } else {
                    in_chunk / stride + 1
                };
                let count = count.min(len - j);
                pieces.push(DimPiece {
                    chunk,
                    map: PieceMap::Run {
                        out_start: j,
                        chunk_start: in_chunk,
                        step: *step,
                        len: count,
                    },
                });
                j += count;
            }
            pieces
        }
        DimSelection::Indices(indices) => {
            let mut by_chunk: std::collections::BTreeMap<u64, Vec<(u64, u64)>> = Default::default();
            for (out, &index) in indices.iter().enumerate() {
                let chunk = index / chunk_len;
                by_chunk
                    .entry(chunk)
                    .or_default()
                    .push((out as u64, index - chunk * chunk_len));
            }
            by_chunk
                .into_iter()
                .map(|(chunk, pairs)| DimPiece {
                    chunk,
                    map: PieceMap::Pairs(pairs),
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(pieces: &[DimPiece], chunk_len: u64) -> Vec<(u64, u64)> {
        // (output position, array index) for every selected element.
        let mut out = Vec::new();
        for p in pieces {
            match &p.map {
                PieceMap::Run {
                    out_start,
                    chunk_start,
                    step,
                    len,
                } => {
                    for j in 0..*len {
                        let c = (*chunk_start as i64 + j as i64 * step) as u64;
                        out.push((out_start + j, p.chunk * chunk_len + c));
                    }
                }
                PieceMap::Pairs(pairs) => {
                    out.extend(pairs.iter().map(|&(o, c)| (o, p.chunk * chunk_len + c)))
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn slices_split_by_chunk() {
        for (start, step, len) in [
            (0u64, 1i64, 10u64),
            (3, 2, 4),
            (9, -1, 10),
            (9, -3, 4),
            (1, 7, 2),
            (5, 1, 0),
        ] {
            let sel = DimSelection::Slice { start, step, len };
            sel.check(0, 10).unwrap();
            let pieces = dim_pieces(&sel, 3);
            let expected: Vec<(u64, u64)> = (0..len)
                .map(|j| (j, (start as i64 + j as i64 * step) as u64))
                .collect();
            assert_eq!(expand(&pieces, 3), expected, "{start} {step} {len}");
            let mut chunks: Vec<u64> = pieces.iter().map(|p| p.chunk).collect();
            chunks.dedup();
            assert_eq!(chunks.len(), pieces.len(), "one piece per chunk");
        }
    }

    #[test]
    fn index_lists_group_by_chunk() {
        let sel = DimSelection::Indices(vec![7, 0, 7, 2, 5]);
        let pieces = dim_pieces(&sel, 3);
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            expand(&pieces, 3),
            vec![(0, 7), (1, 0), (2, 7), (3, 2), (4, 5)]
        );
    }

    #[test]
    fn bounds() {
        let s = Selection(vec![DimSelection::Slice {
            start: 0,
            step: 1,
            len: 11,
        }]);
        assert!(matches!(s.check(&[10]), Err(Error::OutOfBounds(_))));
        let s = Selection(vec![DimSelection::Indices(vec![10])]);
        assert!(s.check(&[10]).is_err());
        let s = Selection(vec![DimSelection::Slice {
            start: 3,
            step: -2,
            len: 3,
        }]);
        assert!(s.check(&[10]).is_err());
        assert!(Selection::all(&[2, 3]).check(&[2]).is_err());
    }

    #[test]
    fn coverage() {
        let run = |chunk_start, step, len| PieceMap::Run {
            out_start: 0,
            chunk_start,
            step,
            len,
        };
        assert!(run(0, 1, 4).covers(4));
        assert!(run(0, 1, 3).covers(3));
        assert!(run(3, -1, 4).covers(4));
        assert!(!run(1, 1, 3).covers(4));
        assert!(!run(0, 2, 2).covers(4));
        assert!(run(0, 5, 1).covers(1));
        assert!(PieceMap::Pairs(vec![(0, 1), (1, 0), (2, 1)]).covers(2));
        assert!(!PieceMap::Pairs(vec![(0, 1)]).covers(2));
    }

    #[test]
    fn a_piece_touches_the_ranges_holding_its_positions() {
        let run = |chunk_start, step, len| PieceMap::Run {
            out_start: 0,
            chunk_start,
            step,
            len,
        };
        // Positions 3, 5, 7, 9 either way round.
        for piece in [run(3, 2, 4), run(9, -2, 4)] {
            assert!(piece.touches(&(0..4)));
            assert!(!piece.touches(&(0..3)));
            assert!(!piece.touches(&(4..5)));
            assert!(piece.touches(&(8..10)));
            assert!(!piece.touches(&(10..16)));
        }
        assert!(!run(0, 1, 0).touches(&(0..4)));
        let pairs = PieceMap::Pairs(vec![(0, 6), (1, 2)]);
        assert!(pairs.touches(&(2..3)));
        assert!(!pairs.touches(&(3..6)));
    }
}
