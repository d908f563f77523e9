//! The procedural world's terrain: a tiling height map made from a few noise layers.
//!
//! Four layers are generated once per process from fixed constants (hills, ridges,
//! dunes, and a fine "detail" layer used for colour variation). A look (from the
//! prompt) weights the shape layers and a seed shifts each layer by its own offset, so
//! a seed change or a prompt blend only re-weights existing layers (milliseconds) and
//! never regenerates noise (the better part of a second). The combined map stores
//! height, its gradient and detail per texel, with a mip chain so distant terrain is
//! sampled from pre-averaged texels instead of shimmering.
//!
//! Everything is f32 arithmetic in a fixed order: the same look and seed give the same
//! map, bit for bit, on a given machine.

use std::sync::LazyLock;

use super::render::floor_i;
use crate::parallel::fill;

/// Texels along each side of the tile.
pub const N: usize = 1024;
/// Metres per texel at level 0.
pub const TEXEL: f32 = 2.0;
/// The world repeats every this many metres.
pub const PERIOD: f64 = N as f64 * TEXEL as f64;
/// Mip levels: 1024 down to 8 texels.
pub const LEVELS: usize = 8;

/// The shape part of a look: metres of each layer, plus a base height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub base: f32,
    pub hills: f32,
    pub ridges: f32,
    pub dunes: f32,
}

/// The noise layers, each `N * N` values, row-major (z rows, x columns).
struct Layers {
    hills: Vec<f32>,
    ridges: Vec<f32>,
    dunes: Vec<f32>,
    detail: Vec<f32>,
}

static LAYERS: LazyLock<Layers> = LazyLock::new(Layers::generate);

/// One texel of the combined map: height (m), gradient (dh/dx, dh/dz), detail (0..1).
pub type Texel = [f32; 4];

/// The combined height map and its mip chain.
pub struct TerrainMap {
    levels: Vec<Vec<Texel>>,
    /// The heights of `levels` alone: what the renderer reads for every sample, most of
    /// which are hidden and never shaded (a quarter of the memory to go through).
    heights: Vec<Vec<f32>>,
    /// The highest point of the map (mip levels, being averages, never exceed it).
    max_height: f32,
    shape: Shape,
    seed: u64,
}

impl TerrainMap {
    pub fn new(shape: Shape, seed: u64) -> Self {
        let mut map = TerrainMap {
            levels: Vec::new(),
            heights: Vec::new(),
            max_height: 0.0,
            shape,
            seed,
        };
        map.build();
        map
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Re-weights the layers for a new shape or seed (no-op when nothing changed).
    pub fn update(&mut self, shape: Shape, seed: u64) {
        if shape != self.shape || seed != self.seed {
            self.shape = shape;
            self.seed = seed;
            self.build();
        }
    }

    /// The highest terrain anywhere.
    pub fn max_height(&self) -> f32 {
        self.max_height
    }

    /// All levels, finest first: what the tensor renderer uploads.
    pub fn levels(&self) -> &[Vec<Texel>] {
        &self.levels
    }

    fn build(&mut self) {
        let layers = &*LAYERS;
        let offsets = seed_offsets(self.seed);
        let s = self.shape;
        let mut heights = vec![0f32; N * N];
        let mut level0 = vec![[0f32; 4]; N * N];
        // Sixteen rows a job.
        fill(&mut heights, 16 * N, |start, out| {
            for (i, h) in out.iter_mut().enumerate() {
                let (z, x) = ((start + i) / N, (start + i) % N);
                let at = |k: usize| ((z + offsets[k].1) % N) * N + (x + offsets[k].0) % N;
                *h = s.base
                    + s.hills * layers.hills[at(0)]
                    + s.ridges * layers.ridges[at(1)]
                    + s.dunes * layers.dunes[at(2)];
            }
        });
        let heights = &heights;
        fill(&mut level0, 16 * N, |start, out| {
            for (i, t) in out.iter_mut().enumerate() {
                let (z, x) = ((start + i) / N, (start + i) % N);
                let h = |dx: usize, dz: usize| heights[((z + dz) % N) * N + (x + dx) % N];
                let d = ((z + offsets[3].1) % N) * N + (x + offsets[3].0) % N;
                *t = [
                    h(0, 0),
                    (h(1, 0) - h(N - 1, 0)) / (2.0 * TEXEL),
                    (h(0, 1) - h(0, N - 1)) / (2.0 * TEXEL),
                    layers.detail[d],
                ];
            }
        });
        let mut levels = vec![level0];
        for k in 1..LEVELS {
            let prev = &levels[k - 1];
            let n = N >> k;
            let pn = n * 2;
            let mut lv = vec![[0f32; 4]; n * n];
            for z in 0..n {
                for x in 0..n {
                    let mut acc = [0f32; 4];
                    for (dz, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let t = prev[(2 * z + dz) * pn + 2 * x + dx];
                        for c in 0..4 {
                            acc[c] += t[c];
                        }
                    }
                    lv[z * n + x] = acc.map(|v| v * 0.25);
                }
            }
            levels.push(lv);
        }
        self.max_height = levels[0].iter().map(|t| t[0]).fold(f32::MIN, f32::max);
        self.heights = levels
            .iter()
            .map(|lv| lv.iter().map(|t| t[0]).collect())
            .collect();
        self.levels = levels;
    }

    /// Bilinear sample of `level` at world position (x, z) in metres; the map tiles.
    #[inline]
    pub fn sample(&self, level: usize, x: f32, z: f32) -> Texel {
        let ((ia, ib, ic, id), ax, az) = self.corners(level, x, z);
        let lv = &self.levels[level];
        let (a, b, c, d) = (lv[ia], lv[ib], lv[ic], lv[id]);
        let mut out = [0f32; 4];
        for i in 0..4 {
            let top = a[i] + (b[i] - a[i]) * ax;
            let bottom = c[i] + (d[i] - c[i]) * ax;
            out[i] = top + (bottom - top) * az;
        }
        out
    }

    /// The height alone of [`TerrainMap::sample`]: the same arithmetic, so the same value.
    #[inline]
    pub fn height(&self, level: usize, x: f32, z: f32) -> f32 {
        let ((ia, ib, ic, id), ax, az) = self.corners(level, x, z);
        let lv = &self.heights[level];
        let (a, b, c, d) = (lv[ia], lv[ib], lv[ic], lv[id]);
        let top = a + (b - a) * ax;
        let bottom = c + (d - c) * ax;
        top + (bottom - top) * az
    }

    /// The four texels around (x, z) at `level` and the bilinear weights.
    #[inline]
    fn corners(&self, level: usize, x: f32, z: f32) -> ((usize, usize, usize, usize), f32, f32) {
        let n = N >> level;
        let mask = n - 1;
        let inv_texel = 1.0 / (TEXEL * (1u32 << level) as f32);
        let tx = x * inv_texel - 0.5;
        let tz = z * inv_texel - 0.5;
        let (fx, fz) = (floor_i(tx), floor_i(tz));
        let (ax, az) = (tx - fx as f32, tz - fz as f32);
        let x0 = (fx as u32 as usize) & mask;
        let z0 = (fz as u32 as usize) & mask;
        let x1 = (x0 + 1) & mask;
        let z1 = (z0 + 1) & mask;
        let (r0, r1) = (z0 * n, z1 * n);
        ((r0 + x0, r0 + x1, r1 + x0, r1 + x1), ax, az)
    }
}

/// Per-layer texel offsets for a seed: each layer shifted independently, so every seed
/// is a different arrangement of hills, ridges and dunes.
pub fn seed_offsets(seed: u64) -> [(usize, usize); 4] {
    let mut offsets = [(0, 0); 4];
    for (k, o) in offsets.iter_mut().enumerate() {
        let a = hash3(seed as u32, (seed >> 32) as u32, 0x5eed_0000 + k as u32);
        let b = hash3(a, k as u32, 0x0ff5_e700);
        *o = (a as usize % N, b as usize % N);
    }
    offsets
}

/// A 32-bit integer hash with good avalanche (the "lowbias32" finaliser).
#[inline]
pub fn hash3(a: u32, b: u32, c: u32) -> u32 {
    let mut h =
        a.wrapping_mul(0x9E37_79B1) ^ b.wrapping_mul(0x85EB_CA77) ^ c.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 16;
    h = h.wrapping_mul(0x7FEB_352D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846C_A68B);
    h ^= h >> 16;
    h
}

/// Tiling value noise in [0, 1) at texel (x, z) with lattice cells `cell` texels wide.
fn value_noise(x: usize, z: usize, cell: usize, salt: u32) -> f32 {
    let cells = (N / cell) as u32;
    let (cx, cz) = ((x / cell) as u32, (z / cell) as u32);
    let fx = (x % cell) as f32 / cell as f32;
    let fz = (z % cell) as f32 / cell as f32;
    let fade = |t: f32| t * t * t * (t * (t * 6.0 - 15.0) + 10.0);
    let (ux, uz) = (fade(fx), fade(fz));
    let v = |i: u32, j: u32| hash3(i % cells, j % cells, salt) as f32 * (1.0 / 4_294_967_296.0);
    let top = v(cx, cz) + (v(cx + 1, cz) - v(cx, cz)) * ux;
    let bottom = v(cx, cz + 1) + (v(cx + 1, cz + 1) - v(cx, cz + 1)) * ux;
    top + (bottom - top) * uz
}

/// Fractal sum of `octaves` value noises from `cell` down, in [-1, 1].
fn fbm(x: usize, z: usize, cell: usize, octaves: u32, salt: u32) -> f32 {
    let (mut sum, mut norm, mut amp, mut c) = (0.0, 0.0, 1.0, cell);
    for o in 0..octaves {
        sum += amp * (value_noise(x, z, c.max(1), salt + o) * 2.0 - 1.0);
        norm += amp;
        amp *= 0.5;
        c /= 2;
    }
    sum / norm
}

impl Layers {
    fn generate() -> Layers {
        let layer = |f: &(dyn Fn(usize, usize) -> f32 + Sync)| {
            let mut v = vec![0f32; N * N];
            fill(&mut v, 16 * N, |start, out| {
                for (i, value) in out.iter_mut().enumerate() {
                    *value = f((start + i) % N, (start + i) / N);
                }
            });
            v
        };
        Layers {
            // Rolling hills: broad fractal noise, [-1, 1].
            hills: layer(&|x, z| fbm(x, z, 256, 6, 0x100)),
            // Mountain ridges: creased noise, sharpened, [0, 1].
            ridges: layer(&|x, z| {
                let (mut sum, mut norm, mut amp, mut cell, mut weight) =
                    (0.0, 0.0, 1.0, 256, 1.0f32);
                for o in 0..6 {
                    let n = 1.0 - (value_noise(x, z, cell, 0x200 + o) * 2.0 - 1.0).abs();
                    let r = n * n * weight;
                    weight = (r * 2.0).clamp(0.0, 1.0);
                    sum += amp * r;
                    norm += amp;
                    amp *= 0.5;
                    cell /= 2;
                }
                (sum / norm).powf(1.3)
            }),
            // Dunes: wind-aligned waves whose phase wanders, heights varying in patches.
            dunes: layer(&|x, z| {
                let warp = fbm(x, z, 128, 3, 0x300);
                let phase =
                    std::f32::consts::TAU * (24 * x + 10 * z) as f32 / N as f32 + 3.0 * warp;
                let crest = 0.5 + 0.5 * phase.sin();
                let patch = 0.5 + 0.5 * fbm(x, z, 256, 2, 0x310);
                crest * crest * patch
            }),
            // Colour detail: fine noise, [0, 1].
            detail: layer(&|x, z| 0.5 + 0.5 * fbm(x, z, 16, 4, 0x400)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        base: 10.0,
        hills: 50.0,
        ridges: 100.0,
        dunes: 0.0,
    };

    #[test]
    fn the_map_tiles_seamlessly() {
        let map = TerrainMap::new(SHAPE, 3);
        let p = PERIOD as f32;
        for (x, z) in [(0.3f32, 7.9f32), (100.0, 2000.0), (-55.5, 13.25)] {
            let a = map.sample(0, x, z);
            let b = map.sample(0, x + p, z - p);
            for c in 0..4 {
                assert!((a[c] - b[c]).abs() < 1e-3, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn gradient_matches_the_heights() {
        let map = TerrainMap::new(SHAPE, 3);
        let (x, z) = (321.0, 654.0);
        let t = map.sample(0, x, z);
        let e = 0.05;
        let dx = (map.sample(0, x + e, z)[0] - map.sample(0, x - e, z)[0]) / (2.0 * e);
        let dz = (map.sample(0, x, z + e)[0] - map.sample(0, x, z - e)[0]) / (2.0 * e);
        assert!((t[1] - dx).abs() < 0.1 + 0.2 * dx.abs(), "{} vs {dx}", t[1]);
        assert!((t[2] - dz).abs() < 0.1 + 0.2 * dz.abs(), "{} vs {dz}", t[2]);
    }

    #[test]
    fn seeds_rearrange_the_world_and_are_repeatable() {
        let a = TerrainMap::new(SHAPE, 1);
        let b = TerrainMap::new(SHAPE, 2);
        let a2 = TerrainMap::new(SHAPE, 1);
        assert_eq!(a.levels, a2.levels);
        assert_ne!(a.sample(0, 500.0, 500.0), b.sample(0, 500.0, 500.0));
    }

    #[test]
    fn shape_scales_the_relief() {
        let flat = TerrainMap::new(
            Shape {
                base: 5.0,
                hills: 0.0,
                ridges: 0.0,
                dunes: 0.0,
            },
            1,
        );
        assert_eq!(flat.sample(0, 12.0, 34.0)[0], 5.0);
        let hilly = TerrainMap::new(SHAPE, 1);
        let hs: Vec<f32> = (0..100)
            .map(|i| hilly.sample(0, i as f32 * 37.0, i as f32 * 11.0)[0])
            .collect();
        let (lo, hi) = hs
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        assert!(
            hi - lo > 30.0 && lo > 10.0 - 50.0 && hi < 10.0 + 150.0,
            "{lo}..{hi}"
        );
    }

    #[test]
    fn mips_average_their_texels() {
        let map = TerrainMap::new(SHAPE, 9);
        let l0 = &map.levels[0];
        let l1 = &map.levels[1];
        let avg = (l0[0][0] + l0[1][0] + l0[N][0] + l0[N + 1][0]) / 4.0;
        assert!((l1[0][0] - avg).abs() < 1e-4);
        assert_eq!(map.levels.len(), LEVELS);
        assert_eq!(map.levels[LEVELS - 1].len(), (N >> (LEVELS - 1)).pow(2));
    }
}
