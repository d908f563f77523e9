"""click: every `every`-th frame (config) is white and starts with a click (5 ms of a
1 kHz tone at half scale); every other frame is dark and silent. A test pattern for the
program's sound: in a recording or at a receiver, each click must be heard within a
frame of its flash. The model's sound is returned with its frames, `audio` float32
[frames x rate / fps, channels], as `audio.out` in the manifest says.
"""

import numpy as np


class Click:
    def __init__(self, *, width, height, fps, device, config, package):
        self.w, self.h, self.fps = width, height, fps
        self.every = int(config.get("every", 8))
        self.rate = 16000
        self.per_frame = int(round(self.rate / fps))
        self.frame = 0
        t = np.arange(int(self.rate * 0.005)) / self.rate
        self.click = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)

    def reset(self, seed, prompt, image):
        self.frame = 0

    def step(self, inputs):
        n = inputs["frames"]
        rgb = np.full((n, self.h, self.w, 3), 30, np.uint8)
        audio = np.zeros((n * self.per_frame, 1), np.float32)
        for i in range(n):
            k = int(inputs["frame"][i])
            if k % self.every == self.every // 2:
                rgb[i] = 255
                at = i * self.per_frame
                audio[at:at + len(self.click), 0] = self.click
        self.frame += n
        return {"rgb": rgb, "audio": audio}

    def save_state(self):
        return {"frame": np.array([self.frame], np.int64)}

    def load_state(self, state):
        self.frame = int(state["frame"][0])
