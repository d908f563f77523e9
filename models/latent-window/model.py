"""latent-window: a small one-frame-per-step action-conditioned world model (cuecast
contract v2, runtime: python).

Shaped like Oasis / DIAMOND / GameNGen: each step makes exactly one frame by denoising a
small latent in a few steps, conditioned on a window of the last N latents (stacked as
channels, re-encoded from scratch every step: no KV cache) and on the actions that made
them, with the current 25-value action vector (20 keys, mouse dx/dy, 3 buttons; the
Minecraft-style action space of Oasis) injected through adaptive group norm as DIAMOND
does. Its whole state is that window, a few hundred kilobytes, which is why it can offer
`state_rollback: copy` (the host saves it before every step and puts it back after a
failed one).

Pieces, all small, with random weights from a fixed seed (`config.weights_seed`):

- latent: width/4 x height/4, 4 channels (the first three carry colour, so a start image
  shows through);
- dynamics: the previous latent is warped by the movement keys and the mouse (the prior),
  then a small two-scale conv net, fed [noisy latent, prior, window], denoises in
  `denoise_steps` steps from seeded noise, modulated by the embedding of the current
  action and the window's action history;
- decoder: conv + bilinear upsampling (x4) over a sky/ground gradient; returns uint8
  [1, H, W, 3] on the model's device.

Noise is counter-based (a generator seeded from (seed, frame counter)), so the state holds
no RNG blob, and identical state plus identical inputs give bit-identical frames.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

KEYS = ("KeyW", "KeyA", "KeyS", "KeyD", "Space", "ShiftLeft", "ControlLeft", "KeyE", "KeyQ", "KeyF",
        "Digit1", "Digit2", "Digit3", "Digit4", "Digit5", "Digit6", "Digit7", "Digit8", "Digit9", "KeyR")
N_ACT = len(KEYS) + 2 + 3  # 25: keys, mouse dx/dy, buttons
DOWN = 4
MASK64 = (1 << 64) - 1


def _ceil(a, b):
    return -(-a // b)


def _splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def _to_numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class LatentWindow:
    def __init__(self, *, width, height, fps, device, config, package):
        cfg = dict(config or {})
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self.device = torch.device(device)
        self.package = package
        self.C = int(cfg.get("latent_channels", 4))
        self.window = int(cfg.get("window", 8))
        self.steps = int(cfg.get("denoise_steps", 3))
        self.F = int(cfg.get("features", 48))
        self.gh, self.gw = _ceil(self.height, DOWN), _ceil(self.width, DOWN)
        with torch.inference_mode():
            self._build(int(cfg.get("weights_seed", 4321)))
            self.win_lat = torch.zeros(self.window, self.C, self.gh, self.gw, device=self.device)
            self.win_act = torch.zeros(self.window, N_ACT, device=self.device)
        self.n = 0
        self.seed = 0

    def _build(self, wseed):
        g = torch.Generator().manual_seed(wseed)
        C, Fe, Nw, dev = self.C, self.F, self.window, self.device
        E = 64

        def w(*shape, gain=1.0):
            fan = shape[1] * shape[2] * shape[3] if len(shape) == 4 else shape[0]
            return (torch.randn(*shape, generator=g) * (gain / math.sqrt(fan))).to(dev)

        def b(*shape, scale=0.1):
            return (torch.randn(*shape, generator=g) * scale).to(dev)

        cin = C + C + Nw * C  # noisy latent, prior, window
        self.e_act1, self.e_act1b, self.e_act2 = w(N_ACT, E, gain=3.5), b(E), w(E, E, gain=1.5)
        self.e_hist = w(Nw * N_ACT, E, gain=1.5)
        self.e_sigma = b(max(self.steps, 1), E, scale=0.5)
        self.c1w, self.c1b = w(Fe, cin, 3, 3, gain=1.4), b(Fe)
        self.c2w, self.c2b = w(Fe, Fe, 3, 3, gain=1.4), b(Fe)
        self.c3w, self.c3b = w(64, Fe, 3, 3, gain=1.4), b(64)
        self.c4w, self.c4b = w(Fe, Fe + 64, 3, 3, gain=1.4), b(Fe)
        self.c5w, self.c5b = w(C, Fe, 3, 3, gain=1.0), b(C)
        # AdaGN: per norm, the embedding gives a scale and a shift per channel.
        self.ada = [w(E, 2 * n, gain=0.8) for n in (Fe, Fe, 64, Fe)]
        self.img_w = w(3, C, gain=1.5)
        self.img_w[:, :3] = torch.eye(3, device=dev) * 2.0
        self.img_b = b(C)
        self.d1w, self.d1b = w(32, C, 3, 3, gain=1.4), b(32)
        self.d2w, self.d2b = w(16, 32, 3, 3, gain=1.4), b(16)
        self.d3w, self.d3b = w(3, 16, 3, 3, gain=1.0), b(3)
        H, W = self.height, self.width
        t = torch.linspace(0, 1, H).view(1, 1, H, 1)
        ground = torch.sigmoid((t - 0.45) * 12)
        sky = torch.tensor([0.1, 0.4, 1.0]).view(1, 3, 1, 1)
        soil = torch.tensor([0.2, 0.5, -0.5]).view(1, 3, 1, 1)
        self.base = (sky * (1 - ground) + soil * ground).expand(1, 3, H, W).contiguous().to(dev)

    # ---------------------------------------------------------------- helpers
    def _gen(self, n, salt):
        s = _splitmix64(_splitmix64(self.seed) ^ ((n * 0x9E3779B1 + salt) & MASK64)) >> 1
        return torch.Generator(device=self.device).manual_seed(s)

    def _smooth_noise(self, g):
        small = torch.randn(self.C, _ceil(self.gh, 4), _ceil(self.gw, 4), generator=g, device=self.device)
        return F.interpolate(small[None], size=(self.gh, self.gw), mode="bicubic", align_corners=False)[0] * 1.6

    def _ada(self, x, i, emb):
        n = x.shape[1]
        scale, shift = (emb @ self.ada[i]).view(2, n)
        x = F.group_norm(x, 8)
        return x * (1.0 + scale.view(1, n, 1, 1)) + shift.view(1, n, 1, 1)

    def _net(self, x, prior, emb):
        h = torch.cat([x, prior, self.win_lat.reshape(-1, self.gh, self.gw)], 0)[None]
        h1 = F.silu(self._ada(F.conv2d(h, self.c1w, self.c1b, padding=1), 0, emb))
        h1 = F.silu(self._ada(F.conv2d(h1, self.c2w, self.c2b, padding=1), 1, emb))
        h2 = F.avg_pool2d(h1, 2, ceil_mode=True)
        h2 = F.silu(self._ada(F.conv2d(h2, self.c3w, self.c3b, padding=1), 2, emb))
        h2 = F.interpolate(h2, size=(self.gh, self.gw), mode="bilinear", align_corners=False)
        h = F.silu(self._ada(F.conv2d(torch.cat([h1, h2], 1), self.c4w, self.c4b, padding=1), 3, emb))
        return F.conv2d(h, self.c5w, self.c5b, padding=1)[0]

    def _decode(self, z):
        x = z[None]
        H, W = self.height, self.width
        h = F.silu(F.conv2d(x, self.d1w, self.d1b, padding=1))
        h = F.interpolate(h, size=(_ceil(H, 2), _ceil(W, 2)), mode="bilinear", align_corners=False)
        h = F.silu(F.conv2d(h, self.d2w, self.d2b, padding=1))
        h = F.interpolate(h, size=(H, W), mode="bilinear", align_corners=False)
        logits = F.conv2d(h, self.d3w, self.d3b, padding=1)
        color = F.interpolate(x[:, :3], size=(H, W), mode="bilinear", align_corners=False)
        rgb = torch.sigmoid(0.5 * logits + 0.5 * color + self.base)[0]
        return (rgb * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)

    def _actions(self, inputs, T):
        f32 = np.float32
        a = np.zeros((T, N_ACT), f32)
        if "keys" in inputs:
            k = np.asarray(inputs["keys"], f32).reshape(T, -1)[:, : len(KEYS)]
            a[:, : k.shape[1]] = k
        if "mouse" in inputs:
            a[:, 20:22] = np.asarray(inputs["mouse"], f32).reshape(T, 2)
        if "buttons" in inputs:
            a[:, 22:25] = np.asarray(inputs["buttons"], f32).reshape(T, 3)
        return a

    def _frame(self, a_np):
        """One frame from the window and one 25-value action (numpy); returns the latent."""
        n, C, dev = self.n, self.C, self.device
        g = self._gen(n, 1)
        k = a_np[: len(KEYS)]
        mx, my = float(a_np[20]), float(a_np[21])
        # The prior: the last latent moved by the movement keys and the mouse.
        tx = 0.08 * mx + 0.8 * (k[3] - k[1])  # latent cells
        ty = 0.08 * my + 0.8 * (k[5] - k[4])  # Space rises (world moves down), Shift sinks
        zoom = 1.0 + 0.06 * (k[0] - k[2])
        theta = torch.tensor([[1.0 / zoom, 0.0, tx * 2.0 / self.gw], [0.0, 1.0 / zoom, ty * 2.0 / self.gh]],
                             dtype=torch.float32).to(dev)
        a_feat = a_np.copy()
        a_feat[20:22] = np.tanh(a_feat[20:22] / 16.0)
        a = torch.from_numpy(a_feat).to(dev)
        prev = self.win_lat[-1]
        grid = F.affine_grid(theta[None], (1, C, self.gh, self.gw), align_corners=False)
        prior = F.grid_sample(prev[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0]
        emb = F.silu(a @ self.e_act1 + self.e_act1b) @ self.e_act2 + self.win_act.reshape(-1) @ self.e_hist
        sig = [1.0 - i / self.steps for i in range(self.steps)]
        x = torch.randn(C, self.gh, self.gw, generator=g, device=dev)
        for s in range(self.steps):
            pred = self._net(x, prior, emb + self.e_sigma[s])
            if s + 1 < self.steps:
                x = (1.0 - sig[s + 1]) * pred + sig[s + 1] * torch.randn(C, self.gh, self.gw, generator=g, device=dev)
        z = 0.9 * prior + 0.3 * torch.tanh(pred) + 0.1 * self._smooth_noise(g)
        mean = z.mean(dim=(1, 2), keepdim=True)
        std = (z - mean).pow(2).mean(dim=(1, 2), keepdim=True).add(1e-6).sqrt()
        z = 1.5 * torch.tanh(mean / 1.5) + (z - mean) * torch.clamp(1.0 / std, max=1.25)
        # Slide the window (a new tensor each time, so saved snapshots stay valid).
        self.win_lat = torch.cat([self.win_lat[1:], z[None]])
        self.win_act = torch.cat([self.win_act[1:], a[None]])
        self.n += 1
        return z

    # ---------------------------------------------------------------- contract
    def reset(self, seed, prompt, image):
        with torch.inference_mode():
            self.seed = int(seed) & MASK64
            self.n = 0
            g = self._gen(0, 7)
            z0 = self._smooth_noise(g)
            if image is not None:
                img = torch.as_tensor(_to_numpy(image)).to(self.device).float().div(255.0)
                pooled = F.adaptive_avg_pool2d(img.permute(2, 0, 1)[None], (self.gh, self.gw))[0] * 2.0 - 1.0
                z0 = torch.einsum("chw,cd->dhw", pooled, self.img_w) + self.img_b.view(-1, 1, 1) + 0.2 * z0
            self.win_lat = z0[None].repeat(self.window, 1, 1, 1).contiguous()
            self.win_act = torch.zeros(self.window, N_ACT, device=self.device)

    def step(self, inputs):
        T = int(inputs["frames"])
        with torch.inference_mode():
            acts = self._actions(inputs, T)
            return {"rgb": torch.stack([self._decode(self._frame(acts[i])) for i in range(T)])}

    def save_state(self):
        with torch.inference_mode():
            seed = np.array([self.seed], dtype=np.uint64).view(np.int64)[0]
            return {
                "latents": self.win_lat.clone(),
                "actions": self.win_act.clone(),
                "counters": torch.tensor([self.n, int(seed)], dtype=torch.int64),
                "shape": torch.tensor([self.window, self.C, self.gh, self.gw], dtype=torch.int64),
            }

    def load_state(self, state):
        with torch.inference_mode():
            shape = [int(v) for v in _to_numpy(state["shape"]).reshape(-1)]
            want = [self.window, self.C, self.gh, self.gw]
            if shape != want:
                raise ValueError(f"latent-window: saved state has shape {shape}, this model is {want}")
            t = lambda k: torch.from_numpy(np.ascontiguousarray(_to_numpy(state[k]), dtype=np.float32)).to(self.device)
            counters = _to_numpy(state["counters"]).astype(np.int64).reshape(-1)
            self.n = int(counters[0])
            self.seed = int(np.array([counters[1]], dtype=np.int64).view(np.uint64)[0])
            self.win_lat = t("latents").clone()
            self.win_act = t("actions").clone()
