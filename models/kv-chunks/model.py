"""kv-chunks: a small chunked causal video world model with a rolling KV cache (cuecast
contract v2, runtime: python).

Shaped like the Self-Forcing / CausVid / Matrix-Game 2.0 / LongLive family: video is made
autoregressively, a chunk of latent frames per call (3 first, then 4), each latent frame
denoised in a few steps by a transformer whose tokens attend causally over a rolling KV
cache of the last `window` latent frames. That cache is the thing that makes these models
awkward to host: it is large, lives on the accelerator, and is written in place with a
ring index, so a host cannot cheaply copy it before every step. What this model saves
instead is the compact part (the recent latent history, the prompt vectors the history was
cached under, and the counters); `load_state` re-runs the cache pass over that history,
which gives back bit-identical keys and values because each cached frame's K/V depend
only on that frame's latent and prompt vector ("frame-local cache pass", as in the
clean-context re-encode those models do).

Pieces, all small, with random weights from a fixed seed (`config.weights_seed`), so every
process builds the same model:

- latent grid: width/8 x height/8, 16 channels (like a video VAE latent), patchified 2x2
  into transformer tokens (dim 64, 4 heads, 2 layers);
- conditioning added to every token per frame: W/A/S/D multi-hot + mouse (dx, dy) +
  buttons, camera pose (world-to-camera 4x4 and intrinsics), params (grain, speed), and
  the prompt through a stable hash embedding of its words (no tokenizer). The keys and the
  mouse also move the world: the previous latent is warped (shift, zoom) before it
  conditions the next frame, as the action-conditioned family learns to do;
- prompt switches: `set_prompt(text, 0)` re-caches the window under the new prompt (the
  LongLive "KV re-cache"); with `transition_s > 0` the prompt vector blends over that time;
- decoder: conv + bilinear upsampling (x8) to RGB, over a sky/ground backdrop whose horizon
  follows the camera pose and intrinsics (world up is +y, as in cuecast's world), so the
  picture has structure; returns float [T, 3, H, W] in [0, 1] on the model's device.

Randomness is counter-based (a generator seeded from (seed, frame counter) per frame), so
the state needs no RNG blob, and each frame is computed on its own (never batched across
frames), so the frames do not depend on how the host chunks the calls.
"""

import hashlib
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

KEYS = ("KeyW", "KeyA", "KeyS", "KeyD")
PARAMS = (("grain", 0.2), ("speed", 1.0))
DOWN = 8  # pixels per latent cell
PATCH = 2  # latent cells per token side
MASK64 = (1 << 64) - 1


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def _ceil(a, b):
    return -(-a // b)


def _hash_normal(text, dim):
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    return rng.standard_normal(dim)


def prompt_vector(text, dim):
    """A stable text embedding: the sum of per-word hash vectors plus a whole-text term."""
    words = re.findall(r"[a-z0-9]+", (text or "").lower())
    if not words:
        v = _hash_normal("\x00empty", dim)
    else:
        v = sum(_hash_normal("w:" + w, dim) for w in words)
        v = v + 0.5 * math.sqrt(len(words)) * _hash_normal("t:" + " ".join(words), dim)
    v = v / (np.linalg.norm(v) + 1e-8) * math.sqrt(dim)
    return v.astype(np.float32)


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class KvChunks:
    def __init__(self, *, width, height, fps, device, config, package):
        cfg = dict(config or {})
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.device = torch.device(device)
        self.package = package
        self.C = int(cfg.get("latent_channels", 16))
        self.D = int(cfg.get("dim", 64))
        self.heads = int(cfg.get("heads", 4))
        self.L = int(cfg.get("layers", 2))
        self.window = int(cfg.get("window", 6))
        self.steps = int(cfg.get("denoise_steps", 2))
        self.decay = float(cfg.get("decay", 0.95))
        self.gh = _ceil(_ceil(self.height, DOWN), PATCH) * PATCH  # latent grid, whole tokens
        self.gw = _ceil(_ceil(self.width, DOWN), PATCH) * PATCH
        self.th, self.tw = self.gh // PATCH, self.gw // PATCH
        self.N = self.th * self.tw  # tokens per latent frame
        with torch.inference_mode():
            self._build(int(cfg.get("weights_seed", 1234)))
            dev = self.device
            # The rolling KV cache: preallocated, written in place at slot (frame % window).
            self.K = torch.zeros(self.L, self.window * self.N, self.D, device=dev)
            self.V = torch.zeros(self.L, self.window * self.N, self.D, device=dev)
            # The compact history the cache is made from.
            self.hist_lat = torch.zeros(self.window, self.C, self.gh, self.gw, device=dev)
            self.hist_prompt = torch.zeros(self.window, self.D, device=dev)
        self.slot_frame = [-1] * self.window
        self.n = 0  # latent frames written since reset (the initial latent is frame 0)
        self.seed = 0
        self.prompt_text = ""
        self.p_from = self.p_to = None
        self.trans_total, self.trans_pos = 0, 0

    # ---------------------------------------------------------------- weights
    def _build(self, wseed):
        g = torch.Generator().manual_seed(wseed)
        C, D, L, P = self.C, self.D, self.L, PATCH * PATCH
        dev = self.device

        def w(*shape, gain=1.0, fan=None):
            fan = fan or (shape[1] * shape[2] * shape[3] if len(shape) == 4 else shape[0])
            return (torch.randn(*shape, generator=g) * (gain / math.sqrt(fan))).to(dev)

        def b(*shape, scale=0.1):
            return (torch.randn(*shape, generator=g) * scale).to(dev)

        self.w_in, self.b_in = w(2 * C * P, D), b(D)
        self.w_cache_in, self.w_cache_prompt = w(C * P, D), w(D, D, gain=0.5)
        self.wq = [w(D, D) for _ in range(L)]
        self.wk = [w(D, D) for _ in range(L)]
        self.wv = [w(D, D) for _ in range(L)]
        self.wo = [w(D, D, gain=0.7) for _ in range(L)]
        self.m1 = [w(D, 2 * D, gain=1.4) for _ in range(L)]
        self.mb1 = [b(2 * D) for _ in range(L)]
        self.m2 = [w(2 * D, D, gain=0.7) for _ in range(L)]
        self.cm1 = [w(D, 2 * D, gain=1.4) for _ in range(L)]
        self.cm2 = [w(2 * D, D, gain=0.7) for _ in range(L)]
        self.w_out = w(D, C, gain=1.5)
        self.age_emb = b(self.window + 1, D, scale=0.5)
        self.step_emb = b(max(self.steps, 1), D, scale=0.5)
        n_act = len(KEYS) + 2 + 3
        self.a1, self.ab1, self.a2 = w(n_act, 64, gain=2.0), b(64), w(64, D, gain=1.5)
        self.c1, self.cb1, self.c2 = w(16, 64, gain=3.0), b(64), w(64, D, gain=2.5)
        self.wbtn = w(3, D, gain=2.0)  # buttons also act directly, one direction each
        self.wpar = w(len(PARAMS), D, gain=1.5)
        self.wprompt = w(D, D, gain=0.8)
        self.wtint = w(D, 3, gain=0.6)
        self.img_w = w(3, C, gain=1.5)
        with torch.no_grad():
            self.img_w[:, :3] = torch.eye(3, device=dev) * 2.0  # first 3 channels carry colour
        self.img_b = b(C)
        self.d1w, self.d1b = w(32, C, 3, 3, gain=1.4), b(32)
        self.d2w, self.d2b = w(24, 32, 3, 3, gain=1.4), b(24)
        self.d3w, self.d3b = w(12, 24, 3, 3, gain=1.4), b(12)
        self.d4w, self.d4b = w(3, 12, 3, 3, gain=1.0), b(3)

        # 2D sinusoidal token positions (any grid size).
        ys, xs = torch.meshgrid(torch.arange(self.th, dtype=torch.float32),
                                torch.arange(self.tw, dtype=torch.float32), indexing="ij")
        q = D // 4
        freq = torch.exp(-math.log(100.0) * torch.arange(q, dtype=torch.float32) / q)
        ay, ax = ys.reshape(-1, 1) * freq, xs.reshape(-1, 1) * freq
        self.pos = (0.3 * torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], 1)).to(dev)
        # Sky-to-ground gradient the decoder paints over (logits).
        H, W = self.height, self.width
        # Pixel centres, for the horizon the camera pose and intrinsics put in the picture.
        self.pv, self.pu = [a.to(dev) for a in torch.meshgrid(torch.arange(H, dtype=torch.float32) + 0.5,
                                                               torch.arange(W, dtype=torch.float32) + 0.5, indexing="ij")]
        self.sky = torch.tensor([-0.7, 0.2, 1.3]).view(3, 1, 1).to(dev)
        self.soil = torch.tensor([0.8, 0.3, -0.9]).view(3, 1, 1).to(dev)

    # ---------------------------------------------------------------- helpers
    def _patchify(self, z):  # [C, gh, gw] -> [N, C*P*P]
        C, p = z.shape[0], PATCH
        return z.view(C, self.th, p, self.tw, p).permute(1, 3, 0, 2, 4).reshape(self.N, C * p * p)

    def _untokenize(self, t):  # [N, C] -> [C, gh, gw], smooth (bicubic) from the token grid
        t = t.t().reshape(1, self.C, self.th, self.tw)
        return F.interpolate(t, size=(self.gh, self.gw), mode="bicubic", align_corners=False)[0]

    def _gen(self, n, salt):
        s = _splitmix64(_splitmix64(self.seed) ^ ((n * 0x9E3779B1 + salt) & MASK64)) >> 1
        return torch.Generator(device=self.device).manual_seed(s)

    def _smooth_noise(self, g):
        small = torch.randn(self.C, _ceil(self.gh, 3), _ceil(self.gw, 3), generator=g, device=self.device)
        return F.interpolate(small[None], size=(self.gh, self.gw), mode="bicubic", align_corners=False)[0] * 1.6

    def _attend(self, q, k, v):
        h, dh = self.heads, self.D // self.heads
        q = q.view(-1, h, dh).transpose(0, 1)[None]
        k = k.view(-1, h, dh).transpose(0, 1)[None]
        v = v.view(-1, h, dh).transpose(0, 1)[None]
        o = F.scaled_dot_product_attention(q, k, v)
        return o[0].transpose(0, 1).reshape(-1, self.D)

    def _write_cache(self, slot, z, pvec):
        """The frame-local cache pass: K/V of one clean latent frame, written in place."""
        h = self._patchify(z) @ self.w_cache_in + self.pos + pvec @ self.w_cache_prompt
        a, e = slot * self.N, (slot + 1) * self.N
        for l in range(self.L):
            hn = F.layer_norm(h, (self.D,))
            self.K[l, a:e].copy_(hn @ self.wk[l])
            self.V[l, a:e].copy_(hn @ self.wv[l])
            h = h + F.gelu(F.layer_norm(h, (self.D,)) @ self.cm1[l]) @ self.cm2[l]

    def _push(self, z, pvec):
        slot = self.n % self.window
        self.hist_lat[slot].copy_(z)
        self.hist_prompt[slot].copy_(pvec)
        self.slot_frame[slot] = self.n
        self._write_cache(slot, self.hist_lat[slot], self.hist_prompt[slot])
        self.n += 1

    def _next_prompt(self):
        if self.trans_total <= 0 or self.trans_pos >= self.trans_total:
            mix = 1.0
        else:
            self.trans_pos += 1
            mix = self.trans_pos / self.trans_total
        if mix >= 1.0:
            return self.p_to
        return self.p_from * (1.0 - mix) + self.p_to * mix

    def _current_prompt(self):
        if self.trans_total <= 0 or self.trans_pos >= self.trans_total:
            return self.p_to
        mix = self.trans_pos / self.trans_total
        return self.p_from * (1.0 - mix) + self.p_to * mix

    def _features(self, inputs, T):
        """Per-frame action/camera/param features and the latent warp, built on the CPU."""
        f32 = np.float32
        keys = np.zeros((T, len(KEYS)), f32)
        if "keys" in inputs:
            k = np.asarray(inputs["keys"], f32).reshape(T, -1)[:, : len(KEYS)]
            keys[:, : k.shape[1]] = k
        mouse = np.asarray(inputs.get("mouse", np.zeros((T, 2), f32)), f32).reshape(T, 2)
        buttons = np.asarray(inputs.get("buttons", np.zeros((T, 3), f32)), f32).reshape(T, 3)
        params = np.array([[d for _, d in PARAMS]] * T, f32)
        if "params" in inputs:
            pv = np.asarray(inputs["params"], f32).reshape(T, -1)[:, : len(PARAMS)]
            params[:, : pv.shape[1]] = pv
        act = np.concatenate([keys, np.tanh(mouse / 16.0), 2.0 * buttons], 1)
        cam = np.zeros((T, 16), f32)
        pose = np.asarray(inputs.get("camera_pose", np.tile(np.eye(4, dtype=f32), (T, 1, 1))), f32).reshape(T, 4, 4)
        default_k = np.array([[0.8 * self.width, 0, self.width / 2], [0, 0.8 * self.width, self.height / 2], [0, 0, 1]], f32)
        intr = np.asarray(inputs.get("intrinsics", np.tile(default_k, (T, 1, 1))), f32).reshape(T, 3, 3)
        cam[:, :9] = pose[:, :3, :3].reshape(T, 9)
        cam[:, 9:12] = np.tanh(pose[:, :3, 3] / 4.0)
        cam[:, 12] = intr[:, 0, 0] / self.width - 0.8
        cam[:, 13] = intr[:, 1, 1] / self.width - 0.8
        cam[:, 14] = intr[:, 0, 2] / self.width - 0.5
        cam[:, 15] = intr[:, 1, 2] / self.height - 0.5
        # World up is +y (cuecast's world is Y up); its direction in the camera frame,
        # whose y points down the picture.
        geo = np.concatenate([pose[:, :3, 1], intr[:, 0, 0:1], intr[:, 1, 1:2], intr[:, 0, 2:3], intr[:, 1, 2:3]], 1)
        par = np.stack([(params[:, 0] - 0.2) * 3.0, params[:, 1] - 1.0], 1).astype(f32)
        speed = params[:, 1]
        # Warp of the previous latent: mouse and A/D shift it, W/S zoom it.
        tx = speed * (0.05 * mouse[:, 0] + 0.6 * (keys[:, 3] - keys[:, 1]))  # latent cells
        ty = speed * (0.05 * mouse[:, 1])
        zoom = 1.0 + speed * 0.05 * (keys[:, 0] - keys[:, 2])
        theta = np.zeros((T, 2, 3), f32)
        theta[:, 0, 0] = 1.0 / zoom
        theta[:, 1, 1] = 1.0 / zoom
        theta[:, 0, 2] = tx * 2.0 / self.gw
        theta[:, 1, 2] = ty * 2.0 / self.gh
        dev = self.device
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=f32)).to(dev)
        return t(act), t(cam), t(par), t(theta), t(geo), params[:, 0].astype(np.float64).tolist()

    def _horizon(self, geo):
        """Sky/ground logits: a ray is sky when it points above the plane normal to world up."""
        x = (self.pu - geo[5]) / geo[3]
        y = (self.pv - geo[6]) / geo[4]
        s = (geo[0] * x + geo[1] * y + geo[2]) * torch.rsqrt(x * x + y * y + 1.0)
        ground = torch.sigmoid(-12.0 * s)
        return (self.sky * (1 - ground) + self.soil * ground - 0.6 * s.abs())[None]

    def _decode(self, z, pvec, geo):
        x = z[None]
        H, W = self.height, self.width
        h = F.silu(F.conv2d(x, self.d1w, self.d1b, padding=1))
        h = F.interpolate(h, size=(_ceil(H, 4), _ceil(W, 4)), mode="bilinear", align_corners=False)
        h = F.silu(F.conv2d(h, self.d2w, self.d2b, padding=1))
        h = F.interpolate(h, size=(_ceil(H, 2), _ceil(W, 2)), mode="bilinear", align_corners=False)
        h = F.silu(F.conv2d(h, self.d3w, self.d3b, padding=1))
        h = F.interpolate(h, size=(H, W), mode="bilinear", align_corners=False)
        logits = F.conv2d(h, self.d4w, self.d4b, padding=1)
        color = F.interpolate(x[:, :3], size=(H, W), mode="bilinear", align_corners=False)
        tint = torch.tanh(pvec @ self.wtint).view(1, 3, 1, 1)
        return torch.sigmoid(0.4 * logits + 0.3 * color + self._horizon(geo) + tint)[0]

    def _frame(self, act, cam, par, theta, grain):
        """Make one latent frame (self.n), push it into the cache, return (z, prompt vector)."""
        n, C = self.n, self.C
        pvec = self._next_prompt()
        g = self._gen(n, 1)
        prev = self.hist_lat[(n - 1) % self.window]
        grid = F.affine_grid(theta[None], (1, C, self.gh, self.gw), align_corners=False)
        prior = F.grid_sample(prev[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
        cond = (F.silu(act @ self.a1 + self.ab1) @ self.a2 + act[-3:] @ self.wbtn + F.silu(cam @ self.c1 + self.cb1) @ self.c2
                + par @ self.wpar + pvec @ self.wprompt)
        valid = min(n, self.window)
        S = valid * self.N
        ages = torch.tensor([n - self.slot_frame[s] for s in range(valid)], device=self.device)
        age_bias = self.age_emb[ages].repeat_interleave(self.N, 0)
        prior_tok = self._patchify(prior)
        x = torch.randn(C, self.gh, self.gw, generator=g, device=self.device)
        sig = [1.0 - i / self.steps for i in range(self.steps)]
        for s in range(self.steps):
            h = torch.cat([self._patchify(x), prior_tok], 1) @ self.w_in + self.b_in + self.pos + (cond + self.step_emb[s])
            for l in range(self.L):
                hn = F.layer_norm(h, (self.D,))
                q, k, v = hn @ self.wq[l], hn @ self.wk[l] + self.age_emb[0], hn @ self.wv[l]
                K = torch.cat([self.K[l, :S] + age_bias, k])
                V = torch.cat([self.V[l, :S], v])
                h = h + self._attend(q, K, V) @ self.wo[l]
                h = h + F.gelu(F.layer_norm(h, (self.D,)) @ self.m1[l] + self.mb1[l]) @ self.m2[l]
            pred = self._untokenize(F.layer_norm(h, (self.D,)) @ self.w_out)
            if s + 1 < self.steps:
                x = (1.0 - sig[s + 1]) * pred + sig[s + 1] * torch.randn(C, self.gh, self.gw, generator=g, device=self.device)
        z = self.decay * prior + 0.25 * torch.tanh(pred) + 0.5 * grain * self._smooth_noise(g)
        # Keep each channel's contrast near 1 and its mean bounded, so long runs neither
        # wash out nor blow up.
        mean = z.mean(dim=(1, 2), keepdim=True)
        std = (z - mean).pow(2).mean(dim=(1, 2), keepdim=True).add(1e-6).sqrt()
        z = 1.5 * torch.tanh(mean / 1.5) + (z - mean) * torch.clamp(1.0 / std, max=1.25)
        self._push(z, pvec)
        return self.hist_lat[(self.n - 1) % self.window], pvec

    # ---------------------------------------------------------------- contract
    def reset(self, seed, prompt, image):
        with torch.inference_mode():
            self.seed = int(seed) & MASK64
            self.prompt_text = prompt or ""
            self.p_to = torch.from_numpy(prompt_vector(self.prompt_text, self.D)).to(self.device)
            self.p_from = self.p_to.clone()
            self.trans_total = self.trans_pos = 0
            self.n = 0
            self.slot_frame = [-1] * self.window
            self.K.zero_()
            self.V.zero_()
            self.hist_lat.zero_()
            self.hist_prompt.zero_()
            g = self._gen(0, 7)
            z0 = self._smooth_noise(g)
            if image is not None:
                img = torch.as_tensor(_to_numpy(image)).to(self.device).float().div(255.0)
                img = img.permute(2, 0, 1)[None]
                pooled = F.adaptive_avg_pool2d(img, (self.gh, self.gw))[0] * 2.0 - 1.0  # [3, gh, gw]
                enc = torch.einsum("chw,cd->dhw", pooled, self.img_w) + self.img_b.view(-1, 1, 1)
                z0 = enc + 0.3 * z0
            self._push(z0, self.p_to)

    def step(self, inputs):
        T = int(inputs["frames"])
        with torch.inference_mode():
            act, cam, par, theta, geo, grain = self._features(inputs, T)
            frames = []
            for i in range(T):
                z, pvec = self._frame(act[i], cam[i], par[i], theta[i], grain[i])
                frames.append(self._decode(z, pvec, geo[i]))
            return {"rgb": torch.stack(frames)}

    def set_prompt(self, text, transition_s):
        with torch.inference_mode():
            new = torch.from_numpy(prompt_vector(text or "", self.D)).to(self.device)
            self.prompt_text = text or ""
            total = int(round(float(transition_s) * self.fps))
            if total <= 0:
                # Hard cut: re-cache the window under the new prompt (LongLive's KV re-cache).
                self.p_from, self.p_to = new.clone(), new
                self.trans_total = self.trans_pos = 0
                for s in range(min(self.n, self.window)):
                    self.hist_prompt[s].copy_(new)
                    self._write_cache(s, self.hist_lat[s], self.hist_prompt[s])
            else:
                self.p_from = self._current_prompt().clone()
                self.p_to = new
                self.trans_total, self.trans_pos = total, 0

    def save_state(self):
        with torch.inference_mode():
            seed = np.array([self.seed], dtype=np.uint64).view(np.int64)[0]
            return {
                "latents": self.hist_lat.clone(),
                "latent_prompt": self.hist_prompt.clone(),
                "latent_frame": torch.tensor(self.slot_frame, dtype=torch.int64),
                "counters": torch.tensor([self.n, int(seed), self.trans_total, self.trans_pos], dtype=torch.int64),
                "prompt_from": self.p_from.clone(),
                "prompt_to": self.p_to.clone(),
                "prompt_text": torch.tensor(list(self.prompt_text.encode("utf-8")), dtype=torch.uint8),
                "shape": torch.tensor([self.window, self.C, self.gh, self.gw, self.D, self.L], dtype=torch.int64),
            }

    def load_state(self, state):
        with torch.inference_mode():
            shape = [int(v) for v in _to_numpy(state["shape"]).reshape(-1)]
            want = [self.window, self.C, self.gh, self.gw, self.D, self.L]
            if shape != want:
                raise ValueError(f"kv-chunks: saved state has shape {shape}, this model is {want}")
            dev = self.device
            t = lambda k: torch.from_numpy(np.ascontiguousarray(_to_numpy(state[k]))).to(dev)
            counters = _to_numpy(state["counters"]).astype(np.int64).reshape(-1)
            self.n = int(counters[0])
            self.seed = int(np.array([counters[1]], dtype=np.int64).view(np.uint64)[0])
            self.trans_total, self.trans_pos = int(counters[2]), int(counters[3])
            self.slot_frame = [int(v) for v in _to_numpy(state["latent_frame"]).reshape(-1)]
            self.p_from, self.p_to = t("prompt_from").float(), t("prompt_to").float()
            self.prompt_text = bytes(_to_numpy(state["prompt_text"]).astype(np.uint8).tolist()).decode("utf-8", "replace")
            self.hist_lat.copy_(t("latents"))
            self.hist_prompt.copy_(t("latent_prompt"))
            self.K.zero_()
            self.V.zero_()
            # Rebuild the KV cache from the history, slot by slot, with the same code path.
            for s in range(min(self.n, self.window)):
                self._write_cache(s, self.hist_lat[s], self.hist_prompt[s])
