//! The order a conversion writes the destination's units (its shards, or chunks) in, made as
//! it goes: a plan of every unit held in memory cost about 500 bytes a unit, so a grid of
//! millions of chunks took gigabytes before anything was copied.
//!
//! Units go block by block, a block being the units that start in one source chunk, so the
//! units reading a source chunk come together and it is decoded once, however many units it
//! spans (an order going along whole rows of units came back to a source chunk after a row,
//! by when the cache could have dropped it). Blocks, and units within a block, go with the
//! dimensions along which a source chunk spans the most units fastest.

/// A unit's (or a source chunk's) coordinates in its grid.
pub(super) type Coords = Vec<u64>;

#[derive(Debug, Clone)]
pub(super) struct UnitOrder {
    /// The dimensions, slowest first.
    dims: Vec<usize>,
    /// The unit (destination write unit) and source chunk (decode unit) shapes.
    unit: Vec<u64>,
    source_cell: Vec<u64>,
    /// Units along each dimension.
    grid: Vec<u64>,
}

impl UnitOrder {
    pub(super) fn new(shape: &[u64], source_cell: &[u64], unit: &[u64]) -> Self {
        let ndim = shape.len();
        let grid = shape
            .iter()
            .zip(unit)
            .map(|(s, u)| s.div_ceil((*u).max(1)))
            .collect();
        let mut dims: Vec<usize> = (0..ndim).collect();
        // Stable: ties keep C order (the last dimension fastest).
        dims.sort_by(|&a, &b| {
            let ra = source_cell[a] as f64 / unit[a] as f64;
            let rb = source_cell[b] as f64 / unit[b] as f64;
            ra.total_cmp(&rb)
        });
        Self {
            dims,
            unit: unit.iter().map(|u| (*u).max(1)).collect(),
            source_cell: source_cell.iter().map(|c| (*c).max(1)).collect(),
            grid,
        }
    }

    /// How many units there are (saturating: a grid past 2^64 units is never walked whole).
    pub(super) fn len(&self) -> u64 {
        super::saturating_product(self.grid.iter().copied())
    }

    /// The source chunk along dimension `d` in which unit `u` starts.
    fn block(&self, d: usize, u: u64) -> u64 {
        (u128::from(u) * u128::from(self.unit[d]) / u128::from(self.source_cell[d])) as u64
    }

    /// The units along dimension `d` from `lo` on that start in the source chunk `lo` starts
    /// in: `[lo, hi)`.
    fn run(&self, d: usize, lo: u64) -> (u64, u64) {
        let next_block = u128::from(self.block(d, lo)) + 1;
        let hi = (next_block * u128::from(self.source_cell[d])).div_ceil(u128::from(self.unit[d]));
        (lo, hi.min(u128::from(self.grid[d])) as u64)
    }

    /// What orders unit `coords`: its block, then itself, the slowest dimensions first.
    pub(super) fn key(&self, coords: &[u64]) -> Vec<u64> {
        let blocks = self.dims.iter().map(|&d| self.block(d, coords[d]));
        blocks.chain(self.dims.iter().map(|&d| coords[d])).collect()
    }

    /// The last unit in this order to read source chunk `cell`: the units reading it form a
    /// box of the grid, and its far corner comes after all others (a unit's block, and the
    /// unit, grow with each coordinate).
    pub(super) fn last_reader(&self, cell: &[u64]) -> Coords {
        cell.iter()
            .enumerate()
            .map(|(d, &c)| {
                let end = ((u128::from(c) + 1) * u128::from(self.source_cell[d]))
                    .div_ceil(u128::from(self.unit[d]));
                (end.min(u128::from(self.grid[d])) as u64).saturating_sub(1)
            })
            .collect()
    }

    /// Every unit, in order.
    pub(super) fn iter(&self) -> Units<'_> {
        let runs: Vec<(u64, u64)> = self.dims.iter().map(|&d| self.run(d, 0)).collect();
        Units {
            order: self,
            at: runs.iter().map(|r| r.0).collect(),
            runs,
            done: self.grid.contains(&0),
        }
    }

    /// `units`, without repeats, in order.
    pub(super) fn sorted(&self, units: impl IntoIterator<Item = Coords>) -> Vec<Coords> {
        let mut units: Vec<Coords> = units.into_iter().collect();
        // Repeats go before the keys are made: each key is held while sorting.
        units.sort_unstable();
        units.dedup();
        units.sort_by_cached_key(|u| self.key(u));
        units
    }
}

/// The units of an order, one after another: an odometer over the blocks and, within a block,
/// over its units.
#[derive(Debug, Clone)]
pub(super) struct Units<'o> {
    order: &'o UnitOrder,
    /// Per dimension (slowest first), the block's run of units, and the unit.
    runs: Vec<(u64, u64)>,
    at: Vec<u64>,
    done: bool,
}

impl Units<'_> {
    /// Moves to the next block's first unit, or ends.
    fn next_block(&mut self) {
        let order = self.order;
        let mut i = self.runs.len();
        loop {
            if i == 0 {
                self.done = true;
                return;
            }
            i -= 1;
            let d = order.dims[i];
            let lo = self.runs[i].1;
            if lo < order.grid[d] {
                self.runs[i] = order.run(d, lo);
                break;
            }
            self.runs[i] = order.run(d, 0);
        }
        self.at = self.runs.iter().map(|r| r.0).collect();
    }
}

impl Iterator for Units<'_> {
    type Item = Coords;

    fn next(&mut self) -> Option<Coords> {
        if self.done {
            return None;
        }
        let mut coords = vec![0u64; self.at.len()];
        for (i, &d) in self.order.dims.iter().enumerate() {
            coords[d] = self.at[i];
        }
        let mut i = self.at.len();
        loop {
            if i == 0 {
                self.next_block();
                break;
            }
            i -= 1;
            self.at[i] += 1;
            if self.at[i] < self.runs[i].1 {
                break;
            }
            self.at[i] = self.runs[i].0;
        }
        Some(coords)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(shape: &[u64], source_cell: &[u64], unit: &[u64]) -> Vec<Coords> {
        UnitOrder::new(shape, source_cell, unit).iter().collect()
    }

    #[test]
    fn units_go_fastest_along_the_dimension_a_source_chunk_spans() {
        // Source chunks span the whole first dimension: units vary fastest along it.
        let order = all(&[4, 4], &[4, 1], &[2, 2]);
        assert_eq!(order, vec![vec![0, 0], vec![1, 0], vec![0, 1], vec![1, 1]]);
        // Equal ratios keep C order.
        let order = all(&[4, 4], &[2, 2], &[2, 2]);
        assert_eq!(order, vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
    }

    #[test]
    fn the_units_in_one_source_chunk_come_together() {
        // 4x4 source chunks of 2x2 units: the four units of each source chunk, one after
        // another (not the first row of units across both source chunks).
        let order = all(&[4, 8], &[4, 4], &[2, 2]);
        let blocks: Vec<u64> = order.iter().map(|c| c[1] * 2 / 4).collect();
        assert_eq!(blocks, vec![0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(order[..4], [vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]);
    }

    #[test]
    fn the_walk_is_the_sort_by_key_of_every_unit() {
        // Odd shapes, units larger and smaller than source chunks, edges, 0 to 3 dimensions:
        // the walk gives each unit once, in the order of its key.
        let cases: &[(&[u64], &[u64], &[u64])] = &[
            (&[], &[], &[]),
            (&[0, 5], &[2, 2], &[1, 1]),
            (&[7], &[3], &[2]),
            (&[7], &[2], &[3]),
            (&[10, 9], &[4, 3], &[3, 5]),
            (&[10, 9, 5], &[1, 9, 2], &[4, 2, 5]),
            (&[13, 6, 7], &[5, 2, 7], &[2, 3, 1]),
        ];
        for &(shape, source_cell, unit) in cases {
            let order = UnitOrder::new(shape, source_cell, unit);
            let walked: Vec<Coords> = order.iter().collect();
            let grid: Vec<(u64, u64)> = shape
                .iter()
                .zip(unit)
                .map(|(s, u)| (0, s.div_ceil(*u)))
                .collect();
            let mut every = super::super::product(&grid);
            if shape.contains(&0) {
                every.clear();
            }
            assert_eq!(walked.len() as u64, order.len(), "{shape:?}");
            assert_eq!(
                walked,
                order.sorted(every),
                "{shape:?} {source_cell:?} {unit:?}"
            );
        }
    }

    #[test]
    fn the_last_reader_of_a_source_chunk_comes_after_all_its_readers() {
        let (shape, source_cell, unit) = ([13u64, 6, 7], [5u64, 2, 7], [2u64, 3, 1]);
        let order = UnitOrder::new(&shape, &source_cell, &unit);
        let walked: Vec<Coords> = order.iter().collect();
        for cell in super::super::product(&[(0, 3), (0, 3), (0, 1)]) {
            let reads = |u: &Coords| {
                (0..3).all(|d| {
                    u[d] * unit[d] < (cell[d] + 1) * source_cell[d]
                        && (u[d] + 1) * unit[d] > cell[d] * source_cell[d]
                })
            };
            let last = walked.iter().rposition(reads);
            let expected = last.map(|i| walked[i].clone());
            assert_eq!(Some(order.last_reader(&cell)), expected, "{cell:?}");
        }
    }
}
