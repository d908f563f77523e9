//! The look tables' tests.

use super::*;

#[test]
fn same_prompt_same_look() {
    assert_eq!(
        look_for("snowy mountains at dawn"),
        look_for("Snowy  mountains, at dawn!")
    );
}

#[test]
fn known_words_choose_the_biome() {
    let m = look_for("mountains");
    let d = look_for("desert dunes");
    assert!(m.shape.ridges > 300.0, "{m:?}");
    assert!(d.shape.dunes > 40.0 && d.water < -1000.0, "{d:?}");
    // Snow brings the snow line down; dawn warms the sky.
    let s = look_for("snowy mountains at dawn");
    assert!(s.snow_line < m.snow_line);
    assert!(s.sky_tint[0] > s.sky_tint[2]);
}

#[test]
fn unknown_words_give_a_stable_look_of_their_own() {
    let a = look_for("zorblax quintessence");
    assert_eq!(a, look_for("zorblax quintessence"));
    assert_ne!(a, look_for("flumph vortigaunt"));
    // An unknown word shifts colour, not the biome the known words chose.
    let m = look_for("mountains of zorblax");
    assert_eq!(m.shape, look_for("mountains").shape);
    assert_ne!(m.low, look_for("mountains").low);
}

#[test]
fn empty_prompt_is_rolling_hills() {
    assert_eq!(look_for(""), BIOMES[0].1);
}

#[test]
fn mixing_is_linear_and_ends_exactly() {
    let a = look_for("desert");
    let b = look_for("forest");
    assert_eq!(a.mix(&b, 0.0), a);
    assert_eq!(a.mix(&b, 1.0), b);
    let half = a.mix(&b, 0.5);
    assert!((half.shape.hills - (a.shape.hills + b.shape.hills) / 2.0).abs() < 1e-4);
}

#[test]
fn the_sun_follows_the_clock() {
    let look = look_for("");
    let noon = Light::new(12.0, 0.0, &look);
    let dawn = Light::new(6.5, 0.0, &look);
    let night = Light::new(0.0, 0.0, &look);
    assert!(noon.sun_dir[1] > 0.8 && dawn.sun_dir[1] > 0.0 && dawn.sun_dir[1] < 0.3);
    assert!(
        dawn.sun_dir[0] > 0.9,
        "rises in the east: {:?}",
        dawn.sun_dir
    );
    assert!(noon.zenith[2] > 0.5 && night.zenith[2] < 0.1);
    assert!(dawn.horizon[0] > dawn.horizon[2], "warm horizon at dawn");
    assert!(Light::new(12.0, 1.0, &look).fog_density > 10.0 * noon.fog_density);
}
