"""restyle: a small video-to-video model (cuecast contract v2, runtime: python).

Shaped like StreamDiffusion's img2img stream: every step takes the newest input frame
(`inputs["video"]`, uint8 [1, H, W, 3]) and returns it restyled under the prompt. The
"network" is small and its weights random from `config.weights_seed`, so every process
builds the same model:

- the prompt picks a style through a stable hash of its words (no tokenizer): a 3x3
  colour matrix, a tint and an edge weight, mixed across a prompt transition as
  `prompt_mix` says;
- a fixed random 3x3 convolution (the "encoder") finds edges, which the style inks in;
- `strength` (a param) mixes the styled picture over the input; `trail` keeps some of
  the last output, which is the model's state (like a stream's latent feedback).

The output is a function of the input frame, the prompt, the params and the state, and
nothing else: the same inputs give the same frames, however steps are chunked.
"""

import hashlib

import numpy as np


def _style(text, rng_seed):
    """A prompt's style: colour matrix, tint, edge weight (stable across processes)."""
    digest = hashlib.sha256(f"{rng_seed}:{text.strip().lower()}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    matrix = np.eye(3) * 0.55 + rng.uniform(-0.35, 0.6, (3, 3))
    tint = rng.uniform(-0.25, 0.25, 3)
    edges = rng.uniform(0.3, 1.2)
    return matrix.astype(np.float32), tint.astype(np.float32), np.float32(edges)


class Restyle:
    def __init__(self, *, width, height, fps, device, config, package):
        self.width, self.height = width, height
        self.seed = int(config.get("weights_seed", 2718))
        rng = np.random.default_rng(self.seed)
        self.kernel = rng.normal(0.0, 1.0, (3, 3)).astype(np.float32)
        self.kernel -= self.kernel.mean()  # an edge finder: flat areas give 0
        self.last = None
        self.styles = {}

    def style(self, text):
        if text not in self.styles:
            if len(self.styles) > 64:
                self.styles.clear()
            self.styles[text] = _style(text, self.seed)
        return self.styles[text]

    def reset(self, seed, prompt, image):
        self.last = None

    def edges(self, grey):
        padded = np.pad(grey, 1, mode="edge")
        h, w = grey.shape
        out = np.zeros_like(grey)
        for dy in range(3):
            for dx in range(3):
                out += self.kernel[dy, dx] * padded[dy:dy + h, dx:dx + w]
        return np.abs(out)

    def step(self, inputs):
        n = inputs["frames"]
        video = inputs["video"]
        text = inputs.get("prompt") or ""
        previous = inputs.get("prompt_previous")
        mixes = inputs.get("prompt_mix", np.ones(n, np.float32))
        params = inputs.get("params", np.tile([[0.8, 0.25]], (n, 1)))
        out = np.empty((n, self.height, self.width, 3), np.uint8)
        for i in range(n):
            frame = video[min(i, len(video) - 1)].astype(np.float32) / 255.0
            m, t, e = self.style(text)
            if previous is not None and mixes[i] < 1.0:
                pm, pt, pe = self.style(previous)
                a = float(mixes[i])
                m, t, e = a * m + (1 - a) * pm, a * t + (1 - a) * pt, a * e + (1 - a) * pe
            styled = frame @ m.T + t
            ink = self.edges(frame.mean(axis=2))[..., None] * e
            styled = np.clip(styled - ink, 0.0, 1.0)
            strength, trail = float(params[i][0]), float(params[i][1])
            picture = strength * styled + (1.0 - strength) * frame
            if self.last is not None:
                picture = trail * self.last + (1.0 - trail) * picture
            self.last = picture
            out[i] = np.round(picture * 255.0).astype(np.uint8)
        return {"rgb": out}

    def save_state(self):
        if self.last is None:
            return {"empty": np.zeros(1, np.float32)}
        return {"last": self.last.astype(np.float32)}

    def load_state(self, state):
        self.last = state["last"].copy() if "last" in state else None
