//! The procedural world's renderer: terrain drawn column by column ("voxel space"),
//! with per-pixel depth, shading and sky, for any camera pitch.
//!
//! Why columns: marching every pixel's ray through the height map costs ~120 ms a
//! 1280x720 frame on two CPU cores; marching once per screen column and filling the rows
//! each sample uncovers costs a sixth of that, with the same picture (the benchmark's
//! section 1 has the figures).
//!
//! Where the time goes, and why the marcher looks as it does: most of a column's
//! samples are hidden behind nearer terrain, so a sample first reads only its height
//! (from a map of heights alone, a quarter of the memory of the full texels) and is
//! shaded only if its rows are seen; colours are packed once per sample and blended as
//! integers per row; the sky, which changes slowly with height, is shaded every few rows
//! and blended (every row near the sun's disc); depth is made only when a take records
//! it. Reading the height map is what is left: the marcher waits on memory.
//!
//! Columns are exact for a *level* camera, where every screen column is a vertical plane.
//! Each column marches outwards at geometrically spaced depths z; the terrain height H
//! at each sample projects to the screen height `y = (H - C_y) / z` (tangent units), and
//! a y-buffer fills each pixel row the first time terrain reaches it, interpolating colour
//! and depth between the two samples the row falls between. What no terrain reaches is
//! sky.
//!
//! A pitched camera is drawn exactly too: a level camera with the same centre sees the
//! same rays, so the level image is rendered over the window of its image plane that the
//! pitched view covers (a homography of the pitched image), and each output pixel reads
//! it back through that homography. At pitch 0 the window is the output itself and
//! nothing is resampled.
//!
//! [`super::tensor`] implements the same algorithm in tensor ops for CUDA; the two are
//! kept in step and compared by a test.

use super::look::{Light, Look, Rgb};
use super::terrain::{TerrainMap, Texel, LEVELS, PERIOD, TEXEL};
use crate::camera::Pose;
use crate::parallel::in_parallel;

/// Nearest and farthest terrain drawn, metres along the view axis.
pub const Z_NEAR: f32 = 0.3;
pub const Z_FAR: f32 = 3000.0;
/// Samples per column, geometrically spaced from Z_NEAR to Z_FAR (2.9 % apart).
pub const SAMPLES: usize = 320;
/// A pitched view renders at most this many times the output's pixels (beyond that the
/// level image gets coarser rather than slower).
pub const PITCH_PIXEL_CAP: f32 = 2.5;

/// A level camera's image: its size, and the window of the image plane it covers.
#[derive(Debug, Clone)]
pub struct View {
    pub width: usize,
    pub height: usize,
    /// Camera position, x and z wrapped into the map's period (keeps f32 precise).
    pub cam: [f32; 3],
    /// Level forward and right, (x, z).
    pub fl: [f32; 2],
    pub right: [f32; 2],
    /// Tangent-space window: left and right x, top and bottom y.
    pub x0: f32,
    pub x1: f32,
    pub y0: f32,
    pub y1: f32,
    /// Depth of each sample along the view axis, and its reciprocal.
    pub z: Vec<f32>,
    pub inv_z: Vec<f32>,
    /// Rows per tangent unit.
    row_scale: f32,
    /// Mip level each sample reads.
    pub level: Vec<u8>,
}

impl View {
    fn new(pose: &Pose, width: usize, height: usize, window: [f32; 4]) -> View {
        let yaw = pose.yaw.to_radians();
        let wrap = |v: f64| v.rem_euclid(PERIOD) as f32;
        let [x0, x1, y0, y1] = window;
        let pixel = (x1 - x0) / width as f32;
        let q = (Z_FAR / Z_NEAR).powf(1.0 / (SAMPLES - 1) as f32);
        let z: Vec<f32> = (0..SAMPLES).map(|i| Z_NEAR * q.powi(i as i32)).collect();
        let level = z
            .iter()
            .map(|&z| {
                // Footprint of a sample: about two pixels across. (Samples are farther apart
                // in depth than across, but rows interpolate between them; choosing the
                // level by depth spacing blurs distant ridges into steps.)
                let across = z * pixel * 2.0;
                (across / TEXEL)
                    .max(1.0)
                    .log2()
                    .floor()
                    .min((LEVELS - 1) as f32) as u8
            })
            .collect();
        View {
            width,
            height,
            inv_z: z.iter().map(|z| 1.0 / z).collect(),
            row_scale: height as f32 / (y0 - y1),
            cam: [wrap(pose.pos[0]), pose.pos[1] as f32, wrap(pose.pos[2])],
            fl: [-yaw.sin() as f32, -yaw.cos() as f32],
            right: [yaw.cos() as f32, -yaw.sin() as f32],
            x0,
            x1,
            y0,
            y1,
            z,
            level,
        }
    }

    /// Tangent-space x of column `u`'s centre.
    pub fn column_x(&self, u: usize) -> f32 {
        self.x0 + (self.x1 - self.x0) * (u as f32 + 0.5) / self.width as f32
    }

    /// Tangent-space y (up) of row `r`'s centre.
    pub fn row_y(&self, r: usize) -> f32 {
        self.y0 - (self.y0 - self.y1) * (r as f32 + 0.5) / self.height as f32
    }

    /// Continuous row coordinate (0 = top edge) of tangent-space height `y`.
    pub fn row_of(&self, y: f32) -> f32 {
        (self.y0 - y) * self.row_scale
    }
}

/// How a pitched output image reads the level image.
#[derive(Debug, Clone, Copy)]
pub struct Warp {
    pub width: usize,
    pub height: usize,
    half_w: f32,
    half_h: f32,
    sin_p: f32,
    cos_p: f32,
}

impl Warp {
    /// Where output row `r` lies in `view`: the level-image row, and the level-image
    /// column of output column u as `col0 + dcol * u` (pixel coordinates, centres at whole
    /// numbers). Along a row of the pitched image the level image is read along a row
    /// too, at a constant rate: only the row changes the homography's denominator.
    #[inline]
    pub fn row_map(&self, view: &View, r: usize) -> RowMap {
        let y = self.half_h - 2.0 * self.half_h * (r as f32 + 0.5) / self.height as f32;
        // The ray fwd' + x R + y up', measured along the level forward and world up.
        let along = self.cos_p - y * self.sin_p;
        let k = view.width as f32 / (view.x1 - view.x0);
        let b = 2.0 * self.half_w / self.width as f32;
        let a = (1.0 / self.width as f32 - 1.0) * self.half_w;
        let yl = (self.sin_p + y * self.cos_p) / along;
        RowMap {
            col0: a / along * k - view.x0 * k - 0.5,
            dcol: b / along * k,
            row: (view.y0 - yl) / (view.y0 - view.y1) * view.height as f32 - 0.5,
            depth_scale: 1.0 / along,
        }
    }
}

/// One output row's place in the level image; see [`Warp::row_map`].
#[derive(Debug, Clone, Copy)]
pub struct RowMap {
    pub col0: f32,
    pub dcol: f32,
    pub row: f32,
    /// Level depth times this is the pitched camera's depth.
    pub depth_scale: f32,
}

/// Blends two RGBx pixels, `w` in 0..=256 towards `b`, two channels per multiply (each
/// channel's product fits its 16-bit lane).
#[inline(always)]
pub fn blend(a: u32, b: u32, w: u32) -> u32 {
    let v = 256 - w;
    let rb = (((a & 0x00FF_00FF) * v + (b & 0x00FF_00FF) * w) >> 8) & 0x00FF_00FF;
    let gx = ((((a >> 8) & 0x00FF_00FF) * v + ((b >> 8) & 0x00FF_00FF) * w) >> 8) & 0x00FF_00FF;
    rb | (gx << 8)
}

/// A bilinear weight, 0..=256.
#[inline(always)]
pub fn weight(f: f32) -> u32 {
    (f * 256.0) as u32
}

/// `x.floor()` for |x| < 2^31, without a call into libm: the x86-64 baseline has no
/// rounding instruction, and a call in the innermost loops costs more than the rest of
/// the sample.
#[inline(always)]
pub fn floor_i(x: f32) -> i32 {
    let i = x as i32;
    i - i32::from(i as f32 > x)
}

/// `x.ceil()` for |x| < 2^31; see [`floor_i`].
#[inline(always)]
pub fn ceil_i(x: f32) -> i32 {
    let i = x as i32;
    i + i32::from((i as f32) < x)
}

/// What to render for a pose: the level view, and the warp to the pitched output if
/// the camera is pitched.
pub struct Plan {
    pub view: View,
    pub warp: Option<Warp>,
}

/// Plans a frame of `width` x `height` for `pose` (pitch within ±80 degrees) at
/// `detail` (see [`crate::detail`]): 1 draws a level-image pixel per output pixel, 0.5
/// half as many each way, which the warp scales up to the output.
pub fn plan(pose: &Pose, width: usize, height: usize, detail: f32) -> Plan {
    let half_w = (pose.fov.to_radians() / 2.0).tan() as f32;
    let half_h = half_w * height as f32 / width as f32;
    let pitch = pose.pitch.to_radians();
    if pitch == 0.0 && detail >= 1.0 {
        let view = View::new(pose, width, height, [-half_w, half_w, half_h, -half_h]);
        return Plan { view, warp: None };
    }
    let (sin_p, cos_p) = (pitch.sin() as f32, pitch.cos() as f32);
    // The window: a level image plane covering the pitched view's four corners.
    let along = |y: f32| cos_p - y * sin_p;
    let level_y = |y: f32| (sin_p + y * cos_p) / along(y);
    let xmax = half_w / along(half_h).min(along(-half_h));
    let (top, bottom) = (level_y(half_h), level_y(-half_h));
    let mut density = width as f32 / (2.0 * half_w) * detail.clamp(0.25, 1.0);
    let area = (2.0 * xmax) * (top - bottom) * density * density;
    let cap = PITCH_PIXEL_CAP * (width * height) as f32;
    if area > cap {
        density *= (cap / area).sqrt();
    }
    // One pixel of margin all round, so bilinear reads stay inside.
    let margin = 1.0 / density;
    let level_w = ((2.0 * (xmax + margin)) * density).ceil() as usize;
    let level_h = ((top - bottom + 2.0 * margin) * density).ceil() as usize;
    let x0 = -(level_w as f32) / (2.0 * density);
    let y0 = top + margin;
    let window = [x0, -x0, y0, y0 - level_h as f32 / density];
    Plan {
        view: View::new(pose, level_w, level_h, window),
        warp: Some(Warp {
            width,
            height,
            half_w,
            half_h,
            sin_p,
            cos_p,
        }),
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

/// The sample before the current one in a column: enough to shade it if the rows
/// between it and the current one turn out to be seen.
struct Prev {
    row: f32,
    z: f32,
    level: usize,
    /// World position (wrapped) and height above the camera.
    at: [f32; 2],
    t: f32,
    /// RGBx, once shaded.
    colour: Option<u32>,
}

impl Prev {
    fn colour(&mut self, map: &TerrainMap, shading: &Shading, g: [f32; 2]) -> u32 {
        let (level, at, z, t) = (self.level, self.at, self.z, self.t);
        *self
            .colour
            .get_or_insert_with(|| shade(map, shading, level, at, z, t, g))
    }
}

/// The RGBx colour of the terrain sample at depth `z` along level direction `g`: its
/// full texel at `level` and world position `at`, `t` above the camera.
fn shade(
    map: &TerrainMap,
    shading: &Shading,
    level: usize,
    at: [f32; 2],
    z: f32,
    t: f32,
    g: [f32; 2],
) -> u32 {
    let tex = map.sample(level, at[0], at[1]);
    pack(shading.terrain(tex, [z * g[0], t, z * g[1]]))
}

/// The highest row any sample from each one on could reach, given the map's highest
/// point: a column whose y-buffer is already above it is finished (the rest would be
/// hidden; stopping changes no pixel). The same for every column of a frame.
fn reach_limits(view: &View, map: &TerrainMap, water: f32) -> Vec<f32> {
    let top = map.max_height().max(water) - view.cam[1];
    let far = *view.z.last().unwrap();
    view.z
        .iter()
        .map(|&z| view.row_of(if top > 0.0 { top / z } else { top / far }))
        .collect()
}

/// Renders level `view` into column-major scratch: `pixels[u * height + r]`, `depth`
/// likewise, for columns `columns`.
///
/// Most samples of a column are hidden behind nearer terrain: for those only the height
/// is read (one channel of the map, bilinear); the full texel is read and shaded only
/// for samples whose rows are seen, and for the sample before them, which the rows
/// between blend from.
fn render_columns(
    view: &View,
    map: &TerrainMap,
    shading: &Shading,
    limit: &[f32],
    columns: std::ops::Range<usize>,
    pixels: &mut [u32],
    mut depth: Option<&mut [f32]>,
) {
    let h = view.height;
    let [cx, cy, cz] = view.cam;
    let water = shading.look.water;
    for (k, u) in columns.enumerate() {
        let px = &mut pixels[k * h..(k + 1) * h];
        let mut dp = depth.as_deref_mut().map(|d| &mut d[k * h..(k + 1) * h]);
        let xu = view.column_x(u);
        let g = [
            view.fl[0] + xu * view.right[0],
            view.fl[1] + xu * view.right[1],
        ];
        let mut ymin = h as f32;
        let mut prev: Option<Prev> = None;
        for (i, &z) in view.z.iter().enumerate() {
            if ymin <= limit[i] {
                break;
            }
            let level = view.level[i] as usize;
            let at = [cx + z * g[0], cz + z * g[1]];
            // Water is a flat surface at its level.
            let t = map.height(level, at[0], at[1]).max(water) - cy;
            let row = view.row_of(t * view.inv_z[i]);
            let mut colour = None;
            if row < ymin {
                let first = ceil_i(row - 0.5).max(0) as usize;
                let end = (ceil_i(ymin - 0.5).max(0) as usize).min(h);
                if first < end {
                    let c1 = shade(map, shading, level, at, z, t, g);
                    colour = Some(c1);
                    match &mut prev {
                        // The rows between two samples: colour and depth interpolated
                        // by where each row's centre falls between them.
                        Some(p) => {
                            let c0 = p.colour(map, shading, g);
                            let (z0, row0) = (p.z, p.row);
                            let inv = 1.0 / (row0 - row);
                            let f = |r: usize| ((row0 - (r as f32 + 0.5)) * inv).clamp(0.0, 1.0);
                            for (r, p) in px.iter_mut().enumerate().take(end).skip(first) {
                                *p = blend(c0, c1, weight(f(r)));
                            }
                            if let Some(dp) = dp.as_deref_mut() {
                                for (r, d) in dp.iter_mut().enumerate().take(end).skip(first) {
                                    *d = z0 + (z - z0) * f(r);
                                }
                            }
                        }
                        None => {
                            px[first..end].fill(c1);
                            if let Some(dp) = dp.as_deref_mut() {
                                dp[first..end].fill(z);
                            }
                        }
                    }
                }
                ymin = row;
                if ymin <= 0.0 {
                    break;
                }
            }
            prev = Some(Prev {
                row,
                z,
                level,
                at,
                t,
                colour,
            });
        }
        // What no terrain reached is sky.
        let sky_rows = (ceil_i(ymin - 0.5).max(0) as usize).min(h);
        sky_column(view, shading, xu, g, &mut px[..sky_rows]);
        if let Some(dp) = dp {
            dp[..sky_rows].fill(Z_FAR);
        }
    }
}

/// Sky rows taller than this (tangent units) are each shaded; shorter ones are shaded
/// every few rows and blended between, which no eye tells apart: the sky's colour
/// changes slowly with height except at the sun's disc, which is always shaded row by
/// row.
const SKY_SPAN: f32 = 0.008;
/// Closer to the sun than this (cosine of the angle) every row is shaded.
const NEAR_SUN: f32 = 0.995;

/// Fills the top `px.len()` rows of column `xu` (level direction `g`) with sky.
fn sky_column(view: &View, shading: &Shading, xu: f32, g: [f32; 2], px: &mut [u32]) {
    let rows = px.len();
    if rows == 0 {
        return;
    }
    let sun = shading.light.sun_dir;
    let dir = |r: usize| {
        let y = view.row_y(r);
        let inv = 1.0 / (1.0 + xu * xu + y * y).sqrt();
        [g[0] * inv, y * inv, g[1] * inv]
    };
    let toward = |d: [f32; 3]| d[0] * sun[0] + d[1] * sun[1] + d[2] * sun[2];
    let step = ((SKY_SPAN * view.row_scale) as usize).clamp(1, 8);
    let mut r0 = 0;
    let mut d0 = dir(0);
    let mut c0 = pack(shading.sky(d0));
    px[0] = c0;
    while r0 + 1 < rows {
        let r1 = (r0 + step).min(rows - 1);
        let d1 = dir(r1);
        let c1 = pack(shading.sky(d1));
        if step == 1 || toward(d0) > NEAR_SUN || toward(d1) > NEAR_SUN {
            for (r, p) in px.iter_mut().enumerate().take(r1).skip(r0 + 1) {
                *p = pack(shading.sky(dir(r)));
            }
        } else {
            let span = (r1 - r0) as u32;
            for (k, p) in px[r0 + 1..r1].iter_mut().enumerate() {
                *p = blend(c0, c1, (k as u32 + 1) * 256 / span);
            }
        }
        px[r1] = c1;
        (r0, d0, c0) = (r1, d1, c1);
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

/// Renders one frame on the CPU into `out` (RGBx rows of the output size) and, if
/// `with_depth`, `scratch.depth` (emptied otherwise).
pub fn render_cpu(
    plan: &Plan,
    map: &TerrainMap,
    shading: &Shading,
    out: &mut [u8],
    scratch: &mut Scratch,
    with_depth: bool,
) {
    let view = &plan.view;
    let (lw, lh) = (view.width, view.height);
    let (w, h) = plan.warp.map_or((lw, lh), |wp| (wp.width, wp.height));
    scratch.pixels.resize(lw * lh, 0);
    scratch
        .depth_columns
        .resize(if with_depth { lw * lh } else { 0 }, 0.0);
    scratch
        .depth
        .resize(if with_depth { w * h } else { 0 }, 0.0);
    scratch.width = w;
    // Small jobs shared out as threads come free: on a shared machine a core can stall,
    // and a fixed half per core would make the whole frame wait for it.
    const COLUMNS_PER_JOB: usize = 16;
    let job = COLUMNS_PER_JOB * lh;
    let jobs = scratch
        .pixels
        .chunks_mut(job)
        .zip(chunks_if_any(&mut scratch.depth_columns, job))
        .enumerate();
    let limit = reach_limits(view, map, shading.look.water);
    in_parallel(jobs, |(n, (px, dp))| {
        let columns = n * COLUMNS_PER_JOB..((n + 1) * COLUMNS_PER_JOB).min(lw);
        render_columns(view, map, shading, &limit, columns, px, dp);
    });
    match plan.warp {
        None => {
            let out_px = bytemuck_u32(out);
            transpose(&scratch.pixels, out_px, lw, lh);
            if with_depth {
                transpose(&scratch.depth_columns, &mut scratch.depth, lw, lh);
            }
        }
        Some(warp) => {
            let (pixels, depths) = (&scratch.pixels, &scratch.depth_columns);
            const ROWS_PER_JOB: usize = 8;
            let jobs = out
                .chunks_mut(ROWS_PER_JOB * w * 4)
                .zip(chunks_if_any(&mut scratch.depth, ROWS_PER_JOB * w))
                .enumerate();
            in_parallel(jobs, |(n, (rows, mut drows))| {
                let rows = bytemuck_u32(rows);
                for (k, row) in rows.chunks_exact_mut(w).enumerate() {
                    let m = warp.row_map(view, n * ROWS_PER_JOB + k);
                    warp_row(&m, pixels, lw, lh, row);
                    if let Some(d) = &mut drows {
                        warp_depth(&m, depths, lw, lh, &mut d[k * w..(k + 1) * w]);
                    }
                }
            });
        }
    }
}

/// `v` in chunks of `size` beside each job, or `None` for every job when `v` is empty
/// (no depth asked for).
fn chunks_if_any<T>(v: &mut [T], size: usize) -> impl Iterator<Item = Option<&mut [T]>> {
    v.chunks_mut(size)
        .map(Some)
        .chain(std::iter::repeat_with(|| None))
}

/// Fills one output row from the column-major level image: fixed-point bilinear colour,
/// the column stepped in 16.16 fixed point (no float conversion per pixel).
/// [`super::tensor`] does the same arithmetic in floats.
fn warp_row(m: &RowMap, pixels: &[u32], lw: usize, lh: usize, out: &mut [u32]) {
    let r = m.row.clamp(0.0, (lh - 1) as f32);
    let r0 = (r as usize).min(lh.saturating_sub(2));
    let wr = weight(r - r0 as f32);
    let r1 = (r0 + 1).min(lh - 1);
    let (top_row, bottom_row) = (&pixels[r0..], &pixels[r1..]);
    const ONE: i64 = 1 << 16;
    let last = (lw as i64 - 1) * ONE;
    let c0_max = lw.saturating_sub(2);
    let start = (f64::from(m.col0) * ONE as f64) as i64;
    let step = (f64::from(m.dcol) * ONE as f64) as i64;
    for (u, px) in out.iter_mut().enumerate() {
        let c = (start + step * u as i64).clamp(0, last);
        let c0 = ((c >> 16) as usize).min(c0_max);
        let c1 = (c0 + 1).min(lw - 1);
        let wc = ((c - ((c0 as i64) << 16)) >> 8) as u32;
        let top = blend(top_row[c0 * lh], top_row[c1 * lh], wc);
        let bottom = blend(bottom_row[c0 * lh], bottom_row[c1 * lh], wc);
        *px = blend(top, bottom, wr);
    }
}

/// The depth of one output row: the nearest level-image pixel's.
fn warp_depth(m: &RowMap, depths: &[f32], lw: usize, lh: usize, out: &mut [f32]) {
    let r = m.row.clamp(0.0, (lh - 1) as f32);
    // Non-negative here: rounding is adding a half and truncating.
    let rn = ((r + 0.5) as usize).min(lh - 1);
    for (u, d) in out.iter_mut().enumerate() {
        let c = (m.col0 + m.dcol * u as f32).clamp(0.0, (lw - 1) as f32);
        *d = depths[((c + 0.5) as usize).min(lw - 1) * lh + rn] * m.depth_scale;
    }
}

/// Views RGBx bytes as packed pixels (R in the lowest byte of each little-endian u32).
fn bytemuck_u32(bytes: &mut [u8]) -> &mut [u32] {
    // SAFETY: u32 has no invalid bit patterns; align_to_mut only returns the middle part
    // when it is correctly aligned, and we check that nothing is left over.
    let (head, body, tail) = unsafe { bytes.align_to_mut::<u32>() };
    assert!(
        head.is_empty() && tail.is_empty(),
        "frame buffers are 4-byte aligned"
    );
    body
}

/// Column-major `w` x `h` (`src[u * h + r]`) to row-major (`dst[r * w + u]`), in tiles
/// that stay in cache.
fn transpose<T: Copy>(src: &[T], dst: &mut [T], w: usize, h: usize) {
    const TILE: usize = 32;
    for r0 in (0..h).step_by(TILE) {
        for u0 in (0..w).step_by(TILE) {
            for r in r0..(r0 + TILE).min(h) {
                for u in u0..(u0 + TILE).min(w) {
                    dst[r * w + u] = src[u * h + r];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::look::{look_for, Light};
    use super::*;

    /// Sky blended between rows shaded every few is within three levels of every row
    /// shaded, in the columns through the setting sun's disc and glow as elsewhere.
    #[test]
    fn blended_sky_is_the_shaded_sky() {
        let look = look_for("rolling green hills");
        let light = Light::new(17.8, 0.2, &look);
        let shading = Shading::new(&look, &light);
        let pose = Pose {
            pos: [10.0, 80.0, -30.0],
            yaw: 90.0,
            pitch: 0.0,
            fov: 70.0,
        };
        let view = plan(&pose, 1280, 720, 1.0).view;
        let mut worst = 0u8;
        let mut near_sun = 0;
        for u in (0..view.width).step_by(7) {
            let xu = view.column_x(u);
            let g = [
                view.fl[0] + xu * view.right[0],
                view.fl[1] + xu * view.right[1],
            ];
            let mut blended = vec![0u32; view.height];
            sky_column(&view, &shading, xu, g, &mut blended);
            for (r, b) in blended.iter().enumerate() {
                let y = view.row_y(r);
                let inv = 1.0 / (1.0 + xu * xu + y * y).sqrt();
                let d = [g[0] * inv, y * inv, g[1] * inv];
                let s = light.sun_dir;
                near_sun += usize::from(d[0] * s[0] + d[1] * s[1] + d[2] * s[2] > 0.9997);
                let exact = pack(shading.sky(d));
                for shift in [0, 8, 16] {
                    let (a, e) = ((b >> shift) as u8, (exact >> shift) as u8);
                    worst = worst.max(a.abs_diff(e));
                }
            }
        }
        assert!(near_sun > 0, "no column crossed the sun's disc");
        assert!(worst <= 3, "blended sky off by {worst} levels");
    }
}
