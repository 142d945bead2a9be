//! Test helpers for the distance transforms: random site grids and the brute-force
//! definition they are checked against.

/// The definition: the minimum over all sites, by brute force.
pub(crate) fn brute_force(sites: &[bool], shape: &[usize], spacing: &[f64]) -> Vec<f64> {
    let coords = |mut i: usize| {
        let mut c = vec![0usize; shape.len()];
        for a in (0..shape.len()).rev() {
            c[a] = i % shape[a];
            i /= shape[a];
        }
        c
    };
    let site_coords: Vec<Vec<usize>> = (0..sites.len()).filter(|&i| sites[i]).map(coords).collect();
    (0..sites.len())
        .map(|i| {
            let v = coords(i);
            site_coords
                .iter()
                .map(|s| {
                    (0..shape.len())
                        .map(|a| {
                            let d = (v[a] as f64 - s[a] as f64) * spacing[a];
                            d * d
                        })
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

/// A small deterministic generator (SplitMix64).
pub(crate) fn random_sites(len: usize, density: f64, seed: u64) -> Vec<bool> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64) < density
        })
        .collect()
}
