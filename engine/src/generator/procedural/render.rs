//! The procedural world's renderer: terrain drawn column by column ("voxel space"),
//! with exact perspective for a pitched camera, per-pixel depth, shading and sky.
//!
//! Why columns: marching every pixel's ray through the height map costs ~120 ms a frame
//! on two CPU cores; marching once per screen column and filling the rows each sample
//! uncovers costs a few milliseconds, with the same picture.
//!
//! The geometry, for a camera with yaw, pitch p and no roll. Every screen column `u` is
//! a plane through the camera spanned by the level direction `g = fL + x_u cos(p) R`
//! (fL: level forward, R: right, x_u: the column's tangent) and the camera's up vector
//! `up'`. A point of that plane is `C + s g + t up'`; its depth along the view axis is
//! `z = s cos(p)` and its screen height (tangent units) is `y = t / z - tan(p)`. Marching
//! s outwards in geometric steps, the terrain point at each s is where the plane meets
//! the ground: `C_y + t cos(p) = H(B - t sin(p) fL)` with `B = C + s g`, solved for t by
//! Newton's method (no iteration at pitch 0, where t = H(B) - C_y). A screen-space
//! y-buffer then fills each pixel row the first time terrain reaches it, interpolating
//! colour and depth between the two samples the row falls between.
//!
//! [`super::tensor`] implements the same algorithm in tensor ops for CUDA; the two are
//! kept in step and compared by a test.

use super::look::{Light, Look, Rgb};
use super::terrain::{TerrainMap, Texel, LEVELS, PERIOD, TEXEL};
use crate::camera::Pose;

/// Nearest and farthest terrain drawn, metres along the view axis.
pub const Z_NEAR: f32 = 0.3;
pub const Z_FAR: f32 = 3000.0;
/// Samples per column, geometrically spaced from Z_NEAR to Z_FAR (2.9 % apart).
pub const SAMPLES: usize = 320;
/// Newton iterations for the terrain point of a pitched column plane.
pub const NEWTON: usize = 2;

/// Per-frame camera set-up, shared by both renderers.
#[derive(Debug, Clone)]
pub struct View {
    pub width: usize,
    pub height: usize,
    /// Camera position, x and z wrapped into the map's period (keeps f32 precise).
    pub cam: [f32; 3],
    /// Level forward and right, (x, z).
    pub fl: [f32; 2],
    pub right: [f32; 2],
    pub sin_p: f32,
    pub cos_p: f32,
    pub tan_p: f32,
    /// tan(fov / 2): half the screen width in tangent units.
    pub half_w: f32,
    /// Half the screen height in tangent units.
    pub half_h: f32,
    /// Depth of each sample along the view axis.
    pub z: Vec<f32>,
    /// Mip level each sample reads.
    pub level: Vec<u8>,
}

impl View {
    pub fn new(pose: &Pose, width: usize, height: usize) -> View {
        let yaw = pose.yaw.to_radians();
        let pitch = pose.pitch.to_radians();
        let wrap = |v: f64| v.rem_euclid(PERIOD) as f32;
        let half_w = (pose.fov.to_radians() / 2.0).tan() as f32;
        let half_h = half_w * height as f32 / width as f32;
        let q = (Z_FAR / Z_NEAR).powf(1.0 / (SAMPLES - 1) as f32);
        let z: Vec<f32> = (0..SAMPLES).map(|i| Z_NEAR * q.powi(i as i32)).collect();
        let level = z
            .iter()
            .map(|&z| {
                // Footprint of a sample: a little over a pixel across, half a step deep.
                let across = z * 2.0 * half_w / width as f32 * 1.5;
                let along = z * (q - 1.0) * 0.5;
                (across.max(along) / TEXEL)
                    .max(1.0)
                    .log2()
                    .floor()
                    .min((LEVELS - 1) as f32) as u8
            })
            .collect();
        View {
            width,
            height,
            cam: [wrap(pose.pos[0]), pose.pos[1] as f32, wrap(pose.pos[2])],
            fl: [-yaw.sin() as f32, -yaw.cos() as f32],
            right: [yaw.cos() as f32, -yaw.sin() as f32],
            sin_p: pitch.sin() as f32,
            cos_p: pitch.cos() as f32,
            tan_p: pitch.tan() as f32,
            half_w,
            half_h,
            z,
            level,
        }
    }

    /// Tangent-space x of column `u`'s centre.
    pub fn column_x(&self, u: usize) -> f32 {
        (2.0 * (u as f32 + 0.5) / self.width as f32 - 1.0) * self.half_w
    }

    /// Tangent-space y (up) of row `r`'s centre.
    pub fn row_y(&self, r: usize) -> f32 {
        self.half_h - 2.0 * self.half_h * (r as f32 + 0.5) / self.height as f32
    }

    /// Continuous row coordinate (0 = top edge) of tangent-space height `y`.
    pub fn row_of(&self, y: f32) -> f32 {
        (self.half_h - y) * self.height as f32 / (2.0 * self.half_h)
    }

    pub fn newton_steps(&self) -> usize {
        if self.sin_p.abs() < 1e-6 {
            0
        } else {
            NEWTON
        }
    }
}

pub fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn madd(a: Rgb, b: Rgb, k: f32) -> Rgb {
    [a[0] + b[0] * k, a[1] + b[1] * k, a[2] + b[2] * k]
}

fn mul(a: Rgb, b: Rgb) -> Rgb {
    [a[0] * b[0], a[1] * b[1], a[2] * b[2]]
}

/// Constants of one frame's shading.
pub struct Shading<'a> {
    pub look: &'a Look,
    pub light: &'a Light,
    /// Fog at the far plane: the sky near the horizon matches it.
    pub far_fog: f32,
}

impl<'a> Shading<'a> {
    pub fn new(look: &'a Look, light: &'a Light) -> Self {
        Shading {
            look,
            light,
            far_fog: 1.0 - (-light.fog_density * Z_FAR).exp(),
        }
    }

    /// Fog colour along unit direction `d`: the horizon, brighter towards the sun.
    fn fog_colour(&self, d: [f32; 3]) -> Rgb {
        let l = self.light;
        let toward = (d[0] * l.sun_dir[0] + d[1] * l.sun_dir[1] + d[2] * l.sun_dir[2]).max(0.0);
        let t2 = toward * toward;
        let t8 = t2 * t2 * t2 * t2;
        madd(l.horizon, l.sun, 0.3 * l.sun_glow * t8)
    }

    /// The colour of terrain texel `tex` seen along view vector `v` (camera to point).
    pub fn terrain(&self, tex: Texel, v: [f32; 3]) -> Rgb {
        let (look, l) = (self.look, self.light);
        let [h, hx, hz, detail] = tex;
        let dist = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-3);
        let d = [v[0] / dist, v[1] / dist, v[2] / dist];
        let colour = if h < look.water {
            let base = lerp3(
                look.shore,
                look.water_colour,
                smoothstep(0.0, 6.0, look.water - h),
            );
            let lit = mul(base, madd(l.ambient, l.sun, l.sun_dir[1].max(0.0)));
            let c = 1.0 - (-d[1]).max(0.0);
            let c2 = c * c;
            lerp3(lit, l.horizon, 0.02 + 0.98 * c2 * c2 * c)
        } else {
            let inv = 1.0 / (hx * hx + 1.0 + hz * hz).sqrt();
            let n = [-hx * inv, inv, -hz * inv];
            let slope = 1.0 - n[1];
            let rel = ((h - look.shape.base) / look.relief()).clamp(0.0, 1.0);
            let mut c = lerp3(look.low, look.mid, smoothstep(0.2, 0.5, rel));
            c = lerp3(c, look.high, smoothstep(0.5, 0.85, rel));
            c = lerp3(
                look.shore,
                c,
                smoothstep(look.water + 0.5, look.water + 3.0, h),
            );
            c = lerp3(c, look.rock, smoothstep(0.25, 0.5, slope));
            let snow = smoothstep(
                look.snow_line - 15.0,
                look.snow_line + 15.0,
                h + (detail - 0.5) * 40.0,
            ) * (1.0 - smoothstep(0.35, 0.6, slope));
            c = lerp3(c, look.snow, snow);
            let k = 1.0 + (detail - 0.5) * look.detail * 2.0;
            let diffuse =
                (n[0] * l.sun_dir[0] + n[1] * l.sun_dir[1] + n[2] * l.sun_dir[2]).max(0.0);
            mul(
                [c[0] * k, c[1] * k, c[2] * k],
                madd(l.ambient, l.sun, diffuse),
            )
        };
        let fog = (1.0 - (-l.fog_density * dist).exp()).max(smoothstep(0.6 * Z_FAR, Z_FAR, dist));
        lerp3(colour, self.fog_colour(d), fog)
    }

    /// The sky along unit direction `d`.
    pub fn sky(&self, d: [f32; 3]) -> Rgb {
        let l = self.light;
        let e = d[1];
        let base = lerp3(l.horizon, l.zenith, e.clamp(0.0, 1.0).sqrt());
        let toward = (d[0] * l.sun_dir[0] + d[1] * l.sun_dir[1] + d[2] * l.sun_dir[2]).max(0.0);
        let mut p = toward;
        for _ in 0..5 {
            p *= p; // toward^32
        }
        let glow = l.sun_glow * (0.25 * p + 2.0 * smoothstep(0.9994, 0.9997, toward));
        let col = madd(base, l.sun, glow);
        let haze =
            (self.far_fog * (1.0 - smoothstep(0.0, 0.25, e))).max(1.0 - smoothstep(0.0, 0.04, e));
        lerp3(col, self.fog_colour(d), haze)
    }
}

/// Packs a colour into RGBx bytes (little-endian u32: R in the lowest byte).
#[inline]
fn pack(c: Rgb) -> u32 {
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0 + 0.5) as u32;
    b(c[0]) | b(c[1]) << 8 | b(c[2]) << 16 | 0xFF00_0000
}

/// Height and gradient as the camera meets them: water is a flat surface.
#[inline]
fn surface(tex: Texel, water: f32) -> (f32, f32, f32) {
    if tex[0] < water {
        (water, 0.0, 0.0)
    } else {
        (tex[0], tex[1], tex[2])
    }
}

/// One terrain sample of a column: its screen row, depth, texel and view vector.
struct Hit {
    row: f32,
    z: f32,
    tex: Texel,
    v: [f32; 3],
    colour: Option<Rgb>,
}

/// Renders `view` into column-major scratch: `pixels[u * height + r]`, `depth` likewise.
fn render_columns(
    view: &View,
    map: &TerrainMap,
    shading: &Shading,
    columns: std::ops::Range<usize>,
    pixels: &mut [u32],
    depth: &mut [f32],
) {
    let h = view.height;
    let [cx, cy, cz] = view.cam;
    let water = shading.look.water;
    let steps = view.newton_steps();
    let (sp, cp) = (view.sin_p, view.cos_p);
    for (k, u) in columns.enumerate() {
        let px = &mut pixels[k * h..(k + 1) * h];
        let dp = &mut depth[k * h..(k + 1) * h];
        let xu = view.column_x(u);
        let gx = view.fl[0] + xu * cp * view.right[0];
        let gz = view.fl[1] + xu * cp * view.right[1];
        let mut ymin = h as f32;
        let mut prev: Option<Hit> = None;
        for i in 0..SAMPLES {
            let z = view.z[i];
            let lvl = view.level[i] as usize;
            let s = z / cp;
            let (bx, bz) = (cx + s * gx, cz + s * gz);
            let mut tex = map.sample(lvl, bx, bz);
            let (hgt, _, _) = surface(tex, water);
            let mut t = (hgt - cy) / cp;
            for _ in 0..steps {
                tex = map.sample(lvl, bx - t * sp * view.fl[0], bz - t * sp * view.fl[1]);
                let (hgt, hx, hz) = surface(tex, water);
                let f = cy + t * cp - hgt;
                let fp = (cp + sp * (hx * view.fl[0] + hz * view.fl[1])).max(0.3 * cp);
                t -= f / fp;
            }
            let row = view.row_of(t / z - view.tan_p);
            let mut hit = Hit {
                row,
                z,
                tex,
                v: [
                    s * gx - t * sp * view.fl[0],
                    t * cp,
                    s * gz - t * sp * view.fl[1],
                ],
                colour: None,
            };
            if row < ymin {
                let first = (row - 0.5).ceil().max(0.0) as usize;
                let end = ((ymin - 0.5).ceil() as usize).min(h);
                if first < end {
                    let c1 = shading.terrain(hit.tex, hit.v);
                    hit.colour = Some(c1);
                    let (c0, z0, row0) = match &mut prev {
                        Some(p) => (
                            *p.colour.get_or_insert_with(|| shading.terrain(p.tex, p.v)),
                            p.z,
                            p.row,
                        ),
                        None => (c1, z, row),
                    };
                    for r in first..end {
                        let centre = r as f32 + 0.5;
                        let f = if prev.is_some() {
                            ((row0 - centre) / (row0 - row)).clamp(0.0, 1.0)
                        } else {
                            1.0
                        };
                        px[r] = pack(lerp3(c0, c1, f));
                        dp[r] = z0 + (z - z0) * f;
                    }
                }
                ymin = row;
                if ymin <= 0.0 {
                    break;
                }
            }
            prev = Some(hit);
        }
        // What no terrain reached is sky.
        let sky_rows = ((ymin - 0.5).ceil().max(0.0) as usize).min(h);
        for r in 0..sky_rows {
            let y = view.row_y(r);
            // Ray direction: fwd' + x R + y up'.
            let d = [
                cp * view.fl[0] + xu * view.right[0] - y * sp * view.fl[0],
                sp + y * cp,
                cp * view.fl[1] + xu * view.right[1] - y * sp * view.fl[1],
            ];
            let inv = 1.0 / (1.0 + xu * xu + y * y).sqrt();
            px[r] = pack(shading.sky([d[0] * inv, d[1] * inv, d[2] * inv]));
            dp[r] = Z_FAR;
        }
    }
}

/// Scratch buffers kept between frames so rendering allocates nothing.
#[derive(Default)]
pub struct Scratch {
    pixels: Vec<u32>,
    depth_columns: Vec<f32>,
    /// Depth of the last frame, row-major, metres along the view axis.
    pub depth: Vec<f32>,
    /// Width of the last frame.
    pub width: usize,
}

/// Renders one frame on the CPU into `out` (RGBx rows) and `scratch.depth`.
pub fn render_cpu(
    view: &View,
    map: &TerrainMap,
    shading: &Shading,
    out: &mut [u8],
    scratch: &mut Scratch,
) {
    let (w, h) = (view.width, view.height);
    scratch.pixels.resize(w * h, 0);
    scratch.depth_columns.resize(w * h, 0.0);
    scratch.depth.resize(w * h, 0.0);
    scratch.width = w;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let per = w.div_ceil(threads);
    std::thread::scope(|scope| {
        let chunks = scratch
            .pixels
            .chunks_mut(per * h)
            .zip(scratch.depth_columns.chunks_mut(per * h));
        for (n, (px, dp)) in chunks.enumerate() {
            let columns = n * per..((n + 1) * per).min(w);
            scope.spawn(move || render_columns(view, map, shading, columns, px, dp));
        }
    });
    // Column-major scratch to row-major output, in tiles that stay in cache.
    const TILE: usize = 32;
    let (pixels, depth_cols) = (&scratch.pixels, &scratch.depth_columns);
    for r0 in (0..h).step_by(TILE) {
        for u0 in (0..w).step_by(TILE) {
            for r in r0..(r0 + TILE).min(h) {
                let row = &mut out[r * w * 4..(r + 1) * w * 4];
                let drow = &mut scratch.depth[r * w..(r + 1) * w];
                for u in u0..(u0 + TILE).min(w) {
                    row[u * 4..u * 4 + 4].copy_from_slice(&pixels[u * h + r].to_le_bytes());
                    drow[u] = depth_cols[u * h + r];
                }
            }
        }
    }
}
