//! What a row operation may hand CubeCL: every buffer length it will use, checked against the
//! kernels' 32-bit indices before anything is launched.

use super::block::BLOCK as SCAN_BLOCK;
use super::radix_sort::{BLOCK as SORT_BLOCK, DIGITS};
use crate::error::SegLossError;

/// The largest element count of any buffer the row operations hand CubeCL, and so of any
/// row. The kernels address in 32 bits (CubeCL's `u32` addressing, which `launch_unchecked`
/// takes on trust) and form indices up to a grid row of workgroups (65535 × 256 units, see
/// [`Grid`](super::launch::Grid)) and a block past a row's end; with every length below
/// `2^31`, every such index
/// stays below `2^32`. The rows need it too: the sort's payloads carry the pixel index below
/// bit 31 (the label bit), and the indices it returns are i32.
pub(crate) const BUFFER_LIMIT: usize = i32::MAX as usize;

/// The row operation a launch is for: each uses its own buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowOp {
    /// [`super::radix_sort::sort_rows`] and the sorted values.
    Sort,
    /// [`super::scan::scan_rows`].
    Cumsum,
    /// The sort with labels, then [`super::lovasz::weights_of_sorted`].
    LovaszWeights,
}

/// Checks, before anything is launched, that every buffer `op` on `[rows, len]` hands CubeCL
/// fits [`BUFFER_LIMIT`] elements (and its size in bytes `usize`): the inputs and outputs
/// (`rows * len`), the sort's digit counts (`rows * 16 * ceil(len / 3840)`) and their scan's
/// block totals, the weights' and prefix sums' block totals (`rows * ceil(len / 4096)`), and
/// the row totals (`rows`). Every product is checked, so none wraps.
///
/// # Errors
/// [`SegLossError::TooLarge`] naming the first length past the limit (a product that
/// overflows counts as `u64::MAX`).
pub(crate) fn check_lengths(op: RowOp, rows: usize, len: usize) -> Result<(), SegLossError> {
    // Every length is `rows` times a per-row length; the row length is checked first, so the
    // per-row lengths themselves cannot overflow.
    let fit = |what: &'static str, per_row: usize| -> Result<usize, SegLossError> {
        match rows.checked_mul(per_row) {
            Some(count) if count <= BUFFER_LIMIT => Ok(count),
            count => Err(SegLossError::TooLarge {
                what,
                count: count.map_or(u64::MAX, |count| count as u64),
                limit: BUFFER_LIMIT as u64,
            }),
        }
    };
    if len > BUFFER_LIMIT {
        return Err(SegLossError::TooLarge {
            what: "elements per row",
            count: len as u64,
            limit: BUFFER_LIMIT as u64,
        });
    }
    let mut largest = fit("elements of a row operation (rows × columns)", len)?;
    if op != RowOp::Cumsum {
        let digit_counts = DIGITS as usize * len.div_ceil(SORT_BLOCK);
        largest = largest.max(fit(
            "digit counts of the radix sort (rows × 16 × blocks of 3840 columns)",
            digit_counts,
        )?);
        fit(
            "block totals of the radix sort's digit-count scan",
            digit_counts.div_ceil(SCAN_BLOCK),
        )?;
    }
    if op != RowOp::Sort {
        fit(
            "block totals of a row scan (rows × blocks of 4096 columns)",
            len.div_ceil(SCAN_BLOCK),
        )?;
    }
    fit("row totals (rows)", 1)?;
    // All the buffers' elements are 4 bytes (f32, i32, u32): on a 32-bit target the largest
    // can pass `usize`.
    if largest.checked_mul(size_of::<u32>()).is_none() {
        return Err(SegLossError::TooLarge {
            what: "bytes of a row operation's buffer",
            count: largest as u64 * size_of::<u32>() as u64,
            limit: usize::MAX as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Some((what, count))` of the `TooLarge` error, `None` if the lengths fit.
    fn too_large(op: RowOp, rows: usize, len: usize) -> Option<(&'static str, u64)> {
        match check_lengths(op, rows, len) {
            Ok(()) => None,
            Err(SegLossError::TooLarge { what, count, limit }) => {
                assert_eq!(limit, BUFFER_LIMIT as u64);
                Some((what, count))
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    const ALL: [RowOp; 3] = [RowOp::Sort, RowOp::Cumsum, RowOp::LovaszWeights];
    const ROW: &str = "elements per row";
    const ELEMENTS: &str = "elements of a row operation (rows × columns)";
    const DIGIT_COUNTS: &str =
        "digit counts of the radix sort (rows × 16 × blocks of 3840 columns)";
    const LIMIT: usize = (1 << 31) - 1;

    #[test]
    fn the_limit_is_the_largest_i32() {
        assert_eq!(BUFFER_LIMIT, LIMIT);
        assert_eq!(BUFFER_LIMIT, i32::MAX as usize);
    }

    #[test]
    fn rows_and_elements_stop_exactly_at_the_limit() {
        for op in ALL {
            // One row of the limit (2^31 - 1, a prime), and one column more.
            assert_eq!(too_large(op, 1, LIMIT), None, "{op:?}");
            assert_eq!(too_large(op, 1, LIMIT + 1), Some((ROW, 1 << 31)), "{op:?}");
            // The largest even count, 2^31 - 2, in two rows; two rows of 2^30 are one past.
            assert_eq!(too_large(op, 2, (1 << 30) - 1), None, "{op:?}");
            assert_eq!(
                too_large(op, 2, 1 << 30),
                Some((ELEMENTS, 1 << 31)),
                "{op:?}"
            );
        }
        // The prefix sums have no digit counts: rows of one column up to the limit itself.
        assert_eq!(too_large(RowOp::Cumsum, LIMIT, 1), None);
        assert_eq!(
            too_large(RowOp::Cumsum, LIMIT + 1, 1),
            Some((ELEMENTS, 1 << 31))
        );
    }

    #[test]
    fn the_sorts_digit_counts_stop_exactly_at_the_limit() {
        // A row of at most one sort block has 16 digit counts: 16 × rows <= 2^31 - 1 holds
        // up to rows = 2^27 - 1 (16 × rows = 2^31 - 16), whatever the row's length.
        for op in [RowOp::Sort, RowOp::LovaszWeights] {
            for len in [1, 16, 3840] {
                let rows = (1 << 27) - 1;
                let fits = rows * len <= LIMIT;
                let expected = (!fits).then_some((ELEMENTS, (rows * len) as u64));
                assert_eq!(too_large(op, rows, len), expected, "{op:?} [{rows}, {len}]");
            }
            assert_eq!(
                too_large(op, 1 << 27, 1),
                Some((DIGIT_COUNTS, 1 << 31)),
                "{op:?}"
            );
        }
        assert_eq!(too_large(RowOp::Cumsum, 1 << 27, 1), None);
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn overflowing_products_are_too_large_not_wrapped() {
        for op in ALL {
            // 2^63 × 2 wraps to 0 in u64; one row less is 2^64 - 2, no overflow but too large.
            assert_eq!(
                too_large(op, 1 << 63, 2),
                Some((ELEMENTS, u64::MAX)),
                "{op:?}"
            );
            assert_eq!(
                too_large(op, (1 << 63) - 1, 2),
                Some((ELEMENTS, u64::MAX - 1)),
                "{op:?}"
            );
            assert_eq!(too_large(op, usize::MAX, usize::MAX), Some((ROW, u64::MAX)));
            assert_eq!(
                too_large(op, usize::MAX, 1 << 20),
                Some((ELEMENTS, u64::MAX))
            );
        }
    }
}
