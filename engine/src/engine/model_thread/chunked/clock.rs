//! The two clocks of a chunked model: the show's frames and the model's own (slot `k`
//! on air from the first show frame at or after `k / native` seconds), in exact integer
//! arithmetic for fractional rates.

use crate::generator::Fps;

/// `a * b / c`, rounded down or up, without overflow.
pub(super) fn ratio(a: u64, b: u64, c: u64, up: bool) -> u64 {
    let (n, d) = (u128::from(a) * u128::from(b), u128::from(c.max(1)));
    (if up { n.div_ceil(d) } else { n / d }) as u64
}

/// The slot on air at world frame `f`: `floor(f * native / show)`.
pub(super) fn slot_at(f: u64, show: Fps, native: Fps) -> u64 {
    ratio(
        f,
        u64::from(native.num) * u64::from(show.den),
        u64::from(native.den) * u64::from(show.num),
        false,
    )
}

/// The first world frame that shows slot `k`: `ceil(k * show / native)`.
pub(super) fn slot_frame(k: u64, show: Fps, native: Fps) -> u64 {
    ratio(
        k,
        u64::from(show.num) * u64::from(native.den),
        u64::from(show.den) * u64::from(native.num),
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_fps_model_in_a_30_fps_show_shows_frame_k_at_k_over_16_seconds() {
        let (show, native) = (Fps::new(30, 1), Fps::new(16, 1));
        for k in 0..200u64 {
            let f = slot_frame(k, show, native);
            // On air within one show frame of k/16 s, never before it.
            let t = f as f64 / 30.0;
            assert!(
                t >= k as f64 / 16.0 - 1e-9 && t < k as f64 / 16.0 + 1.0 / 30.0,
                "{k}"
            );
            assert_eq!(slot_at(f, show, native), k);
            if f > 0 {
                assert_eq!(slot_at(f - 1, show, native), k - 1);
            }
        }
        let ntsc = Fps::new(30000, 1001);
        assert_eq!(
            slot_at(slot_frame(1_000_000, ntsc, native), ntsc, native),
            1_000_000
        );
    }
}
