"""Exports `tiny-world`, a small but real cuecast model package, from PyTorch.

    python models/example/export.py --out models/tiny-world

writes `tiny-world/cuecast-model.yaml` and `tiny-world/model.pt` (TorchScript). Load it with
`cuecastsrc backend=torchscript model=models/tiny-world`.

The model is deliberately small, so it runs anywhere, but it is a world model in the
sense cuecast cares about: each frame depends on the state (where the camera is, and a
latent texture that evolves), the action (forward, strafe, yaw), the params (brightness,
speed) and the prompt (which tints the sky and the ground). It draws a textured ground
plane in perspective under a sky, finishes with a small fixed convolution, and returns
depth in metres for every pixel.

This file is also the reference for the model contract (docs/model-contract.md):
`reset(seed, prompt) -> state` and `step(state, action, params, prompt) -> (rgb, depth,
state)`, with state a Dict[str, Tensor].
"""

import argparse
import math
import os
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

WIDTH, HEIGHT, FPS = 256, 144, 30
LATENT = 8  # latent texture channels
TEXTURE = 64  # latent texture size (texels)
CAMERA_HEIGHT = 2.0  # metres above the ground plane
FAR = 200.0  # metres: depth of the sky

MANIFEST = f"""\
# A cuecast model package: what the model is and what it accepts.
name: tiny-world
width: {WIDTH}
height: {HEIGHT}
fps: {FPS}
# Action axes the model takes, in the order of its action tensor.
actions: [forward, strafe, yaw]
# Params, in the order of its params tensor.
params:
  - name: brightness
    default: 1.0
    min: 0.2
    max: 2.0
    description: overall light level
  - name: speed
    default: 1.0
    min: 0.0
    max: 5.0
    description: how fast the camera moves (also used by the camera rig)
prompt: text
outputs:
  depth: true
"""


class TinyWorld(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.latent_channels: int = LATENT
        self.texture: int = TEXTURE
        self.width: int = WIDTH
        self.height: int = HEIGHT
        self.camera_height: float = CAMERA_HEIGHT
        self.far: float = FAR
        # A fixed 3x3 smoothing-and-sharpening filter: deterministic weights, no training.
        k = torch.tensor([[0.0, -0.1, 0.0], [-0.1, 1.4, -0.1], [0.0, -0.1, 0.0]])
        self.register_buffer("kernel", k.expand(3, 1, 3, 3).clone())
        ys = torch.arange(HEIGHT, dtype=torch.float32)
        xs = torch.arange(WIDTH, dtype=torch.float32)
        self.register_buffer("rows", ys.view(HEIGHT, 1).expand(HEIGHT, WIDTH).clone())
        self.register_buffer("cols", xs.view(1, WIDTH).expand(HEIGHT, WIDTH).clone())

    def prompt_hue(self, prompt: str) -> float:
        # A stable hash of the prompt's characters, as a hue in [0, 1).
        h = 0
        for i, c in enumerate(prompt):
            h = (h * 31 + ord(c) * (i + 1)) % 1000003
        return float(h % 360) / 360.0

    def hue_rgb(self, hue: float, sat: float, val: float) -> torch.Tensor:
        angles = torch.tensor([0.0, 2.0 / 3.0, 4.0 / 3.0]) * math.pi
        rgb = 0.5 + 0.5 * torch.cos(2.0 * math.pi * hue - angles)
        return (val * (1.0 - sat + sat * rgb)).to(self.kernel.device)

    @torch.jit.export
    def reset(self, seed: int, prompt: str) -> Dict[str, torch.Tensor]:
        dev = self.kernel.device
        # Latent texture from the seed: sums of sines with seed-dependent frequencies.
        n = self.texture
        u = torch.arange(n, dtype=torch.float32, device=dev).view(1, 1, n) / n
        v = torch.arange(n, dtype=torch.float32, device=dev).view(1, n, 1) / n
        c = torch.arange(self.latent_channels, dtype=torch.float32, device=dev).view(-1, 1, 1)
        s = float(seed % 9973)
        fx = 1.0 + torch.floor((c * 7.0 + s * 0.37) % 5.0)
        fy = 1.0 + torch.floor((c * 3.0 + s * 0.61) % 5.0)
        latent = torch.sin(2.0 * math.pi * (fx * u + fy * v) + c + s)
        return {
            "pos": torch.zeros(2, device=dev),
            "heading": torch.zeros(1, device=dev),
            "t": torch.zeros(1, device=dev),
            "latent": latent,
        }

    @torch.jit.export
    def step(
        self,
        state: Dict[str, torch.Tensor],
        action: torch.Tensor,
        params: torch.Tensor,
        prompt: str,
    ) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]:
        forward, strafe, yaw = action[0], action[1], action[2]
        brightness, speed = params[0], params[1]
        heading = state["heading"] + yaw * 0.05
        ch, sh = torch.cos(heading[0]), torch.sin(heading[0])
        move = torch.stack([strafe * ch - forward * sh, -strafe * sh - forward * ch]) * 0.6 * speed
        pos = state["pos"] + move
        t = state["t"] + 1.0
        # The latent texture drifts slowly: the world is alive even when the camera is not.
        latent = torch.roll(state["latent"], shifts=1, dims=2) * 0.995 + 0.005 * torch.tanh(state["latent"])

        # Ground plane in perspective: rows below the horizon see the ground at distance d.
        horizon = self.height * 0.45
        below = (self.rows + 0.5 - horizon).clamp(min=0.5)
        focal = self.width * 0.8
        d = (self.camera_height * focal / below).clamp(max=self.far)
        lateral = (self.cols + 0.5 - self.width / 2.0) / focal * d
        wx = pos[0] + lateral * ch - d * sh
        wz = pos[1] - lateral * sh - d * ch
        # Sample the latent texture at the ground point (0.5 m per texel, wrapping).
        gx = torch.remainder(wx / (0.5 * self.texture), 1.0) * 2.0 - 1.0
        gz = torch.remainder(wz / (0.5 * self.texture), 1.0) * 2.0 - 1.0
        grid = torch.stack([gx, gz], dim=-1).unsqueeze(0)
        tex = F.grid_sample(latent.unsqueeze(0), grid, mode="bilinear", align_corners=False)[0]
        hue = self.prompt_hue(prompt)
        ground_a = self.hue_rgb(hue, 0.6, 0.55).view(3, 1, 1)
        ground_b = self.hue_rgb(hue + 0.5, 0.4, 0.35).view(3, 1, 1)
        pattern = torch.sigmoid(tex[0:3].sum(0, keepdim=True) * 2.0)
        ground = ground_a * pattern + ground_b * (1.0 - pattern)
        fog = torch.exp(-d / 120.0)
        sky_top = self.hue_rgb(hue + 0.55, 0.5, 0.9).view(3, 1, 1)
        sky_bottom = self.hue_rgb(hue + 0.55, 0.2, 1.0).view(3, 1, 1)
        up = (horizon - self.rows).clamp(min=0.0) / horizon
        sky = sky_bottom * (1.0 - up) + sky_top * up
        is_ground = (self.rows + 0.5 >= horizon).float()
        rgb = (ground * fog + sky_bottom * (1.0 - fog)) * is_ground + sky * (1.0 - is_ground)
        rgb = F.conv2d(rgb.unsqueeze(0), self.kernel, padding=1, groups=3)[0]
        rgb = (rgb * brightness).clamp(0.0, 1.0)
        depth = d * is_ground + self.far * (1.0 - is_ground)
        new_state = {"pos": pos, "heading": heading, "t": t, "latent": latent}
        return rgb, depth, new_state


def export(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    model = torch.jit.script(TinyWorld().eval())
    model.save(os.path.join(out, "model.pt"))
    with open(os.path.join(out, "cuecast-model.yaml"), "w") as f:
        f.write(MANIFEST)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="package folder to write")
    export(parser.parse_args().out)
