"""voice: a face whose mouth opens with the voice it hears. Each step receives the
program's sound for its span (`inputs["audio"]`, float32 [frames x rate / fps, 1], the
newest sound, silence before any came); each frame's mouth opens with the loudness
(RMS) of its own share of it, smoothed over frames (the state), and its colour follows
the sound's brightness (the share of high-frequency energy). Silent sound keeps the
mouth shut: the frames provably follow the voice.
"""

import numpy as np


class Voice:
    def __init__(self, *, width, height, fps, device, config, package):
        self.w, self.h = width, height
        self.per_frame = int(round(16000 / fps))
        self.open = 0.0
        yy, xx = np.mgrid[0:height, 0:width]
        self.face = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (0.42 * width) ** 2
        self.yy, self.xx = yy, xx

    def reset(self, seed, prompt, image):
        self.open = 0.0

    def step(self, inputs):
        n = inputs["frames"]
        audio = inputs["audio"][:, 0]
        out = np.zeros((n, self.h, self.w, 3), np.uint8)
        for i in range(n):
            share = audio[i * self.per_frame:(i + 1) * self.per_frame]
            rms = float(np.sqrt(np.mean(share ** 2))) if len(share) else 0.0
            hf = float(np.mean(np.abs(np.diff(share)))) / (float(np.mean(np.abs(share))) + 1e-6) if len(share) > 1 else 0.0
            self.open = 0.6 * self.open + 0.4 * min(1.0, rms * 8)
            frame = out[i]
            frame[self.face] = (230, 190, 150)
            mouth_h = 2 + self.open * self.h * 0.25
            mouth = (np.abs(self.yy - self.h * 0.68) < mouth_h / 2) & (np.abs(self.xx - self.w / 2) < self.w * 0.18)
            frame[mouth] = (int(60 + 150 * min(hf, 1.0)), 20, 30)
        return {"rgb": out}

    def save_state(self):
        return {"open": np.array([self.open], np.float64)}

    def load_state(self, state):
        self.open = float(state["open"][0])
