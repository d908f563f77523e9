//! The procedural renderer in tensor ops, for CUDA.
//!
//! Step for step the algorithm of [`super::render`] (read its module doc first): every
//! column's samples are computed at once as a `[W, D]` grid, the y-buffer becomes a
//! running minimum over D, and "the first sample that reaches this row" becomes a
//! `searchsorted` per column. Shading mirrors `render::Shading` line by line; when one
//! changes, so must the other (a test compares them on the CPU).

use tch::{Device, Kind, Tensor};

use super::look::Rgb;
use super::render::{Plan, RowMap, Shading, View, Z_FAR};
use super::terrain::{Shape, TerrainMap, N, TEXEL};
use crate::generator::{Image, StepError};

pub struct TensorRenderer {
    device: Device,
    /// The map's levels, flattened to `[texels, 4]` on the device, and what it was
    /// built from (re-uploaded when the shape or seed changes).
    map: Option<(Tensor, Shape, u64)>,
    /// Start of each level in the flattened map.
    offsets: Vec<i64>,
    depth: Option<Tensor>,
}

fn ss(e0: f32, e1: f32, x: &Tensor) -> Tensor {
    let t = ((x - f64::from(e0)) / f64::from(e1 - e0)).clamp(0.0, 1.0);
    &t * &t * (3.0 - 2.0 * &t)
}

/// `a + (b - a) * t`, with colours `[..., 3]` or `[3]` and `t` one value per pixel.
fn lerp3(a: &Tensor, b: &Tensor, t: &Tensor) -> Tensor {
    a + (b - a) * t.unsqueeze(-1)
}

impl TensorRenderer {
    pub fn new(device: Device) -> Self {
        TensorRenderer {
            device,
            map: None,
            offsets: Vec::new(),
            depth: None,
        }
    }

    pub fn depth(&self) -> Option<Tensor> {
        self.depth.as_ref().map(Tensor::shallow_clone)
    }

    fn rgb(&self, c: Rgb) -> Tensor {
        Tensor::from_slice(&c).to_device(self.device)
    }

    fn upload(&mut self, map: &TerrainMap) {
        let fresh = matches!(&self.map, Some((_, shape, seed)) if *shape == map.shape() && *seed == map.seed());
        if fresh {
            return;
        }
        let mut flat: Vec<f32> = Vec::new();
        self.offsets.clear();
        for level in map.levels() {
            self.offsets.push((flat.len() / 4) as i64);
            flat.extend(level.iter().flatten());
        }
        let t = Tensor::from_slice(&flat)
            .view([-1, 4])
            .to_device(self.device);
        self.map = Some((t, map.shape(), map.seed()));
    }

    /// Bilinear samples of the map at (x, z) `[W, D]`, level per sample column `[D]`.
    fn sample(&self, x: &Tensor, z: &Tensor, level: &Tensor) -> Tensor {
        let (flat, _, _) = self.map.as_ref().expect("map uploaded");
        let n = Tensor::from_slice(&[N as i64])
            .to_device(self.device)
            .bitwise_right_shift(level);
        let mask = &n - 1;
        let texel = (level.to_kind(Kind::Float).exp2()) * f64::from(TEXEL);
        let offset = Tensor::from_slice(&self.offsets)
            .to_device(self.device)
            .index_select(0, level);
        let tx = x / &texel - 0.5;
        let tz = z / &texel - 0.5;
        let (fx, fz) = (tx.floor(), tz.floor());
        let (ax, az) = ((&tx - &fx).unsqueeze(-1), (&tz - &fz).unsqueeze(-1));
        let x0 = fx.to_kind(Kind::Int64).bitwise_and_tensor(&mask);
        let z0 = fz.to_kind(Kind::Int64).bitwise_and_tensor(&mask);
        let x1 = (&x0 + 1).bitwise_and_tensor(&mask);
        let z1 = (&z0 + 1).bitwise_and_tensor(&mask);
        let shape = x.size();
        let at = |zi: &Tensor, xi: &Tensor| {
            let idx = (&offset + zi * &n + xi).flatten(0, -1);
            flat.index_select(0, &idx).view([shape[0], shape[1], 4])
        };
        let top = at(&z0, &x0);
        let top = &top + (at(&z0, &x1) - &top) * &ax;
        let bottom = at(&z1, &x0);
        let bottom = &bottom + (at(&z1, &x1) - &bottom) * &ax;
        &top + (bottom - &top) * az
    }

    pub fn render(
        &mut self,
        plan: &Plan,
        map: &TerrainMap,
        shading: &Shading,
        out: &mut Image,
    ) -> Result<(), StepError> {
        self.upload(map);
        let dev = self.device;
        let (level_rgb, level_depth) = self.level(&plan.view, shading);
        let (rgb, depth) = match &plan.warp {
            None => (level_rgb, level_depth),
            Some(warp) => {
                // `render::warp_row` for every output pixel at once, in the same integer
                // arithmetic.
                let view = &plan.view;
                let (w, h) = (warp.width as i64, warp.height as i64);
                let (lw, lh) = (view.width as i64, view.height as i64);
                let maps: Vec<RowMap> = (0..warp.height).map(|r| warp.row_map(view, r)).collect();
                let per_row = |f: fn(&RowMap) -> f32| {
                    let v: Vec<f32> = maps.iter().map(f).collect();
                    Tensor::from_slice(&v).to_device(dev).view([h, 1])
                };
                let u = Tensor::arange(w, (Kind::Float, dev)).view([1, w]);
                let c =
                    (per_row(|m| m.dcol) * &u + per_row(|m| m.col0)).clamp(0.0, (lw - 1) as f64);
                let r = per_row(|m| m.row)
                    .clamp(0.0, (lh - 1) as f64)
                    .expand([h, w], true);
                let c0 = c.floor().clamp_max((lw - 2).max(0) as f64);
                let r0 = r.floor().clamp_max((lh - 2).max(0) as f64);
                let wc = ((&c - &c0) * 256.0).to_kind(Kind::Int64).unsqueeze(-1);
                let wr = ((&r - &r0) * 256.0).to_kind(Kind::Int64).unsqueeze(-1);
                let (c0, r0) = (c0.to_kind(Kind::Int64), r0.to_kind(Kind::Int64));
                let (c1, r1) = ((&c0 + 1).clamp_max(lw - 1), (&r0 + 1).clamp_max(lh - 1));
                let flat = level_rgb.to_kind(Kind::Int64).view([lw * lh, 3]);
                let at = |cc: &Tensor, rr: &Tensor| {
                    flat.index_select(0, &(cc * lh + rr).flatten(0, -1))
                        .view([h, w, 3])
                };
                let blend = |a: &Tensor, b: &Tensor, wt: &Tensor| -> Tensor {
                    let keep: Tensor = wt.neg() + 256;
                    (a * keep + b * wt).bitwise_right_shift_tensor_scalar(8)
                };
                let top = blend(&at(&c0, &r0), &at(&c1, &r0), &wc);
                let bottom = blend(&at(&c0, &r1), &at(&c1, &r1), &wc);
                let rgb = blend(&top, &bottom, &wr).to_kind(Kind::Float);
                let nearest = c.round().to_kind(Kind::Int64).clamp_max(lw - 1) * lh
                    + r.round().to_kind(Kind::Int64).clamp_max(lh - 1);
                let depth = level_depth
                    .view([lw * lh])
                    .index_select(0, &nearest.flatten(0, -1))
                    .view([h, w])
                    * per_row(|m| m.depth_scale);
                // Back to [w, h], like the level images.
                (rgb.transpose(0, 1), depth.transpose(0, 1))
            }
        };
        let (w, h) = (rgb.size()[0], rgb.size()[1]);
        let bytes = rgb.to_kind(Kind::Uint8).transpose(0, 1);
        let alpha = Tensor::full([h, w, 1], 255, (Kind::Uint8, dev));
        let rgbx = Tensor::cat(&[bytes, alpha], 2);
        out.with_tensor(|dst| dst.f_copy_(&rgbx))?;
        self.depth = Some(depth.transpose(0, 1).contiguous());
        Ok(())
    }

    /// The level image of `view`: colour already quantised to 0..255 (as floats)
    /// `[w, h, 3]` and depth `[w, h]`, column-major like the CPU renderer's scratch.
    fn level(&self, view: &View, shading: &Shading) -> (Tensor, Tensor) {
        let dev = self.device;
        let (w, h, d) = (view.width as i64, view.height as i64, view.z.len() as i64);
        let [cx, cy, cz] = view.cam.map(f64::from);
        let (flx, flz) = (f64::from(view.fl[0]), f64::from(view.fl[1]));
        let fopts = (Kind::Float, dev);
        let quantise = |c: Tensor| (c.clamp(0.0, 1.0) * 255.0 + 0.5).floor();

        let u = Tensor::arange(w, fopts);
        let xu = (&u + 0.5) * (f64::from(view.x1 - view.x0) / w as f64) + f64::from(view.x0);
        let gx = (&xu * f64::from(view.right[0]) + flx).unsqueeze(1);
        let gz = (&xu * f64::from(view.right[1]) + flz).unsqueeze(1);
        let z = Tensor::from_slice(&view.z).to_device(dev);
        let zs = z.unsqueeze(0);
        let level =
            Tensor::from_slice(&view.level.iter().map(|&l| i64::from(l)).collect::<Vec<_>>())
                .to_device(dev);
        let tex = self.sample(&(&zs * &gx + cx), &(&zs * &gz + cz), &level);
        let t = tex.select(-1, 0).clamp_min(f64::from(shading.look.water)) - cy;
        let row_scale = view.height as f64 / f64::from(view.y0 - view.y1);
        let row = ((&t / &zs).neg() + f64::from(view.y0)) * row_scale;
        let v = Tensor::stack(&[&zs * &gx, t.shallow_clone(), &zs * &gz], -1);
        let colour = self.terrain(shading, &tex, &v);

        // The y-buffer: the first sample whose running minimum row reaches each row centre.
        let runmin = row.cummin(1).0.clamp_max(h as f64);
        let centres = Tensor::arange(h, fopts) + 0.5;
        let rows = centres.neg().expand([w, h], true).contiguous();
        let idx = rows.searchsorted(
            &runmin.neg().contiguous(),
            false,
            false,
            "left",
            None::<Tensor>,
        );
        let hit = idx.lt(d);
        let i1 = idx.clamp_max(d - 1);
        let i0 = (&i1 - 1).clamp_min(0);
        let row0 = row.gather(1, &i0, false);
        let row1 = row.gather(1, &i1, false);
        let cen = centres.unsqueeze(0);
        let frac = ((&row0 - &cen) / (&row0 - &row1))
            .clamp(0.0, 1.0)
            .where_self(&idx.gt(0), &Tensor::ones_like(&row0));
        let pick = |i: &Tensor| colour.gather(1, &i.unsqueeze(-1).expand([w, h, 3], true), false);
        let terrain = lerp3(&pick(&i0), &pick(&i1), &frac);
        let zz = z.expand([w, d], true);
        let (z0, z1) = (zz.gather(1, &i0, false), zz.gather(1, &i1, false));
        let depth = &z0 + (&z1 - &z0) * &frac;

        // Sky for everything terrain did not reach.
        let y = (&centres * (-f64::from(view.y0 - view.y1) / h as f64) + f64::from(view.y0))
            .unsqueeze(0);
        let xc = xu.unsqueeze(1);
        let dir = Tensor::stack(
            &[
                gx.expand([w, h], true),
                y.expand([w, h], true),
                gz.expand([w, h], true),
            ],
            -1,
        );
        let inv = ((&xc * &xc) + (&y * &y) + 1.0).rsqrt().unsqueeze(-1);
        let sky = self.sky(shading, &(dir * inv));
        let rgb = quantise(terrain.where_self(&hit.unsqueeze(-1), &sky));
        let depth = depth.where_self(&hit, &Tensor::full([w, h], f64::from(Z_FAR), fopts));
        (rgb, depth)
    }

    fn fog_colour(&self, shading: &Shading, d: &Tensor) -> Tensor {
        let l = shading.light;
        let toward = d.matmul(&self.rgb(l.sun_dir)).clamp_min(0.0);
        let t2 = &toward * &toward;
        let t4 = &t2 * &t2;
        let t8 = &t4 * &t4;
        self.rgb(l.horizon) + self.rgb(l.sun) * (t8 * f64::from(0.3 * l.sun_glow)).unsqueeze(-1)
    }

    /// Mirrors `render::Shading::terrain`.
    fn terrain(&self, shading: &Shading, tex: &Tensor, v: &Tensor) -> Tensor {
        let (look, l) = (shading.look, shading.light);
        let c = |rgb: Rgb| self.rgb(rgb);
        let (hgt, hx, hz, detail) = (
            tex.select(-1, 0),
            tex.select(-1, 1),
            tex.select(-1, 2),
            tex.select(-1, 3),
        );
        let dist = v
            .square()
            .sum_dim_intlist(-1, false, Kind::Float)
            .sqrt()
            .clamp_min(1e-3);
        let d = v / dist.unsqueeze(-1);
        let wf = f64::from(look.water);

        let base = lerp3(
            &c(look.shore),
            &c(look.water_colour),
            &ss(0.0, 6.0, &(hgt.neg() + wf)),
        );
        let lit = base * (c(l.ambient) + c(l.sun) * f64::from(l.sun_dir[1].max(0.0)));
        let k = d.select(-1, 1).neg().clamp_min(0.0).neg() + 1.0;
        let k2 = &k * &k;
        let wet = lerp3(&lit, &c(l.horizon), &(&k2 * &k2 * &k * 0.98 + 0.02));

        let inv = (&hx * &hx + &hz * &hz + 1.0).reciprocal().sqrt();
        let n = Tensor::stack(&[hx.neg() * &inv, inv.shallow_clone(), hz.neg() * &inv], -1);
        let slope = inv.neg() + 1.0;
        let rel = ((&hgt - f64::from(look.shape.base)) / f64::from(look.relief())).clamp(0.0, 1.0);
        let mut col = lerp3(&c(look.low), &c(look.mid), &ss(0.2, 0.5, &rel));
        col = lerp3(&col, &c(look.high), &ss(0.5, 0.85, &rel));
        col = lerp3(
            &c(look.shore),
            &col,
            &ss(look.water + 0.5, look.water + 3.0, &hgt),
        );
        col = lerp3(&col, &c(look.rock), &ss(0.25, 0.5, &slope));
        let snow = ss(
            look.snow_line - 15.0,
            look.snow_line + 15.0,
            &(&hgt + (&detail - 0.5) * 40.0),
        ) * (ss(0.35, 0.6, &slope).neg() + 1.0);
        col = lerp3(&col, &c(look.snow), &snow);
        let gain = (&detail - 0.5) * f64::from(look.detail * 2.0) + 1.0;
        let diffuse = n.matmul(&c(l.sun_dir)).clamp_min(0.0);
        let dry = col * gain.unsqueeze(-1) * (c(l.ambient) + c(l.sun) * diffuse.unsqueeze(-1));

        let colour = wet.where_self(&hgt.lt(wf).unsqueeze(-1), &dry);
        let fog = ((&dist * f64::from(-l.fog_density)).exp().neg() + 1.0).maximum(&ss(
            0.6 * Z_FAR,
            Z_FAR,
            &dist,
        ));
        lerp3(&colour, &self.fog_colour(shading, &d), &fog)
    }

    /// Mirrors `render::Shading::sky`.
    fn sky(&self, shading: &Shading, d: &Tensor) -> Tensor {
        let l = shading.light;
        let e = d.select(-1, 1);
        let base = lerp3(
            &self.rgb(l.horizon),
            &self.rgb(l.zenith),
            &e.clamp(0.0, 1.0).sqrt(),
        );
        let toward = d.matmul(&self.rgb(l.sun_dir)).clamp_min(0.0);
        let p = toward.pow_tensor_scalar(32);
        let glow = (p * 0.25 + ss(0.9994, 0.9997, &toward) * 2.0) * f64::from(l.sun_glow);
        let col = base + self.rgb(l.sun) * glow.unsqueeze(-1);
        let haze = ((ss(0.0, 0.25, &e).neg() + 1.0) * f64::from(shading.far_fog))
            .maximum(&(ss(0.0, 0.04, &e).neg() + 1.0));
        lerp3(&col, &self.fog_colour(shading, d), &haze)
    }
}
