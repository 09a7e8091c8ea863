//! How a batch's rows are cut into parts, each one engine call, run side by side on the
//! embedder's threads (embedder.rs).
//!
//! A part is padded to its longest row (its trailing all-padding columns are dropped), so its
//! cost is about rows x that length, plus a fixed cost per call (a pass over the weights).
//! The batch used to be cut into one part per thread of equal row counts: with texts of
//! different lengths, sorted longest first as `embed` sorts them, every long row went to the
//! first part (the other thread sat idle) and short rows were padded to long ones (16 texts of
//! 4-60 words: one call 131-140 ms, against 100-113 ms as 16 concurrent one-text calls).
//! [`tasks`] cuts rows of similar lengths into parts, then splits the costliest until the
//! threads can share them evenly.

use std::ops::Range;

/// A call's fixed cost in rows x tokens: all-MiniLM-L6-v2 on one thread, one row of L tokens
/// alone against a row of a batch of 8, took 2-6 ms more (L = 4 to 128), about 12 tokens' work.
pub const CALL_COST: usize = 12;

/// What a part costs: its rows x its longest row (at least 1), plus [`CALL_COST`].
pub fn cost(lens: &[usize], r: &Range<usize>) -> usize {
    r.len() * lens[r.clone()].iter().copied().max().unwrap_or(0).max(1) + CALL_COST
}

/// Contiguous parts covering `0..lens.len()` in order (`lens[r]`: row r's length without its
/// trailing padding) for `threads` threads: the cut with the least total cost (dynamic
/// programming), then the costliest part split in two ([`balanced`]) while the threads outnumber
/// the parts or it costs more than a thread's even share.
pub fn tasks(lens: &[usize], threads: usize) -> Vec<Range<usize>> {
    let b = lens.len();
    if b == 0 {
        return Vec::new();
    }
    // best[j]: the least cost of rows 0..j; from[j]: where its last part starts.
    let mut best = vec![usize::MAX; b + 1];
    let mut from = vec![0; b + 1];
    best[0] = 0;
    for j in 1..=b {
        let mut longest = 0;
        for i in (0..j).rev() {
            longest = longest.max(lens[i].max(1));
            let c = best[i] + (j - i) * longest + CALL_COST;
            if c <= best[j] {
                best[j] = c;
                from[j] = i;
            }
        }
    }
    let mut parts = Vec::new();
    let mut j = b;
    while j > 0 {
        parts.push(from[j]..j);
        j = from[j];
    }
    parts.reverse();
    let threads = threads.max(1);
    loop {
        let total: usize = parts.iter().map(|r| cost(lens, r)).sum();
        let Some((at, top)) = parts.iter().enumerate().max_by_key(|(_, r)| cost(lens, r)) else { break };
        let uneven = parts.len() < threads || cost(lens, top) > total.div_ceil(threads);
        if !uneven || top.len() < 2 {
            break;
        }
        let halves: Vec<Range<usize>> =
            balanced(&lens[top.clone()], 2).into_iter().map(|h| top.start + h.start..top.start + h.end).collect();
        if halves.len() < 2 {
            break;
        }
        parts.splice(at..=at, halves);
    }
    parts
}

/// Contiguous ranges of rows, at most `parts` of them, covering `0..lens.len()` in order, that
/// minimize the largest (rows x longest row) of a range. `lens[r]`: row r's length without its
/// trailing padding.
pub fn balanced(lens: &[usize], parts: usize) -> Vec<Range<usize>> {
    let b = lens.len();
    if b == 0 {
        return Vec::new();
    }
    let parts = parts.clamp(1, b);
    let cost = |r: &Range<usize>| r.len() * lens[r.clone()].iter().copied().max().unwrap_or(0).max(1);
    // The smallest bound that greedy cutting (each range as long as the bound allows) meets in
    // `parts` ranges or fewer; feasibility only grows with the bound, so a binary search finds it.
    let mut lo = lens.iter().copied().max().unwrap_or(0).max(1);
    let mut hi = cost(&(0..b));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if greedy(lens, mid).len() <= parts {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    greedy(lens, lo)
}

/// Ranges as long as `bound` allows each, in order (a row longer than the bound alone).
fn greedy(lens: &[usize], bound: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut longest) = (0, 0);
    for (r, &len) in lens.iter().enumerate() {
        let len = len.max(1);
        let grown = longest.max(len);
        if r > start && (r - start + 1) * grown > bound {
            ranges.push(start..r);
            start = r;
            longest = len;
        } else {
            longest = grown;
        }
    }
    ranges.push(start..lens.len());
    ranges
}

#[cfg(test)]
mod tests {
    use super::{balanced, tasks};

    #[test]
    fn rows_of_one_length_are_one_part_per_thread() {
        assert_eq!(tasks(&[128; 16], 2), vec![0..8, 8..16]);
        assert_eq!(tasks(&[128; 16], 1), vec![0..16]);
        assert_eq!(tasks(&[9], 4), vec![0..1]);
        assert!(tasks(&[], 2).is_empty());
    }

    #[test]
    fn rows_of_different_lengths_are_grouped_then_shared() {
        // Longest first, 62 down to 2 tokens: never one part of everything padded to 62.
        let lens: Vec<usize> = (0..16).map(|i| 62 - 4 * i).collect();
        let parts = tasks(&lens, 2);
        assert!(parts.len() >= 2, "{parts:?}");
        let covered: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
        assert_eq!(covered, (0..16).collect::<Vec<_>>());
        let padded: usize = parts.iter().map(|r| r.len() * lens[r.clone()].iter().max().unwrap()).sum();
        let real: usize = lens.iter().sum();
        assert!(padded < real + real / 4, "{padded} padded for {real} tokens in {parts:?}");
        // Close lengths share a call: the fixed cost outweighs a token of padding.
        assert_eq!(tasks(&[20, 20, 19, 19, 18, 18], 1), vec![0..6]);
        // Far ones do not: 100 and 3 tokens.
        assert_eq!(tasks(&[100, 100, 3, 3], 1), vec![0..2, 2..4]);
    }

    fn costliest(lens: &[usize], ranges: &[std::ops::Range<usize>]) -> usize {
        ranges.iter().map(|r| r.len() * lens[r.clone()].iter().max().unwrap()).max().unwrap()
    }

    #[test]
    fn equal_rows_split_evenly() {
        assert_eq!(balanced(&[128; 16], 2), vec![0..8, 8..16]);
        assert_eq!(balanced(&[7; 5], 2).len(), 2);
        assert_eq!(balanced(&[3; 3], 8), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn long_rows_first_get_fewer_rows() {
        // Longest first: one 120-token row costs as much as eight 15-token ones.
        let lens = [120, 15, 15, 15, 15, 15, 15, 15, 15];
        assert_eq!(balanced(&lens, 2), vec![0..1, 1..9]);
        // 4-60 words, sorted longest first: no part costs more than half the whole plus a row.
        let lens: Vec<usize> = (0..16).map(|i| 70 - 4 * i).collect();
        let ranges = balanced(&lens, 2);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[1].end, 16);
        assert_eq!(ranges[0].end, ranges[1].start);
        assert!(costliest(&lens, &ranges) <= costliest(&lens, &[0..8, 8..16]));
        assert!(ranges[0].len() < 8, "{ranges:?}");
    }

    #[test]
    fn the_best_two_way_cut_is_found() {
        // Against every cut point, for a few orders (not sorted too: embed_tokens keeps the
        // caller's order).
        for lens in [vec![5, 9, 1, 1, 30, 2, 2, 8], vec![1, 1, 1, 64], vec![40, 3, 40, 3, 40]] {
            let best = (1..lens.len()).map(|k| costliest(&lens, &[0..k, k..lens.len()])).min().unwrap();
            let got = balanced(&lens, 2);
            assert!(got.len() <= 2);
            assert_eq!(got.first().unwrap().start, 0);
            assert_eq!(got.last().unwrap().end, lens.len());
            assert_eq!(costliest(&lens, &got), best.min(costliest(&lens, &[0..lens.len()])), "{lens:?}");
        }
        assert!(balanced(&[], 2).is_empty());
        assert_eq!(balanced(&[0, 0], 2), vec![0..1, 1..2]);
    }
}
