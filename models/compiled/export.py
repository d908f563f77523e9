"""Exports cuecast's reference models as compiled packages (contract 2, run in process).

    python models/compiled/export.py --out DIR [--models tiny-world,chunks]
                                     [--runtimes aoti,torchscript,python] [--reference]

writes a package folder `DIR/<model>-<runtime>` for each model and runtime asked for
(`tiny-world` in all three; `chunks` as `aoti` only), in about a minute on two cores:

- `aoti`: `model.pt2`, from `torch.export` and AOTInductor, with graphs `reset`, `step`
  and (when the first step after a reset makes another number of frames) `first_step`,
  compiled for this machine's CPU, or for CUDA with `--device cuda`. Load it with
  `cuecastsrc backend=aoti model=DIR/tiny-world-aoti`.
- `torchscript`: `model.pt`, a TorchScript module with methods `reset` and `step` of the
  same flat signature (`backend=torchscript`).
- `python`: the same model in eager PyTorch, run by cuecast's python worker
  (`backend=python`): what the compiled runtimes are measured against.

The two models:

- `tiny-world`: the one-frame model of `models/example` (a textured ground under a sky,
  steered by forward/strafe/yaw, with depth), 256 x 144 at 30 fps, one frame a step.
- `chunks`: a small chunked latent world, 256 x 144 at 16 fps, 3 frames after a reset
  then 4 a step, steered by W/A/S/D and the mouse: a window of latent frames, each new
  one attending over the window, warped by the keys and mouse, with noise from an
  integer hash of (seed, frame) so that it is the same eager and compiled, however the
  host chunks the calls.

Both follow the in-process contract (docs/model-contract.md, "In process"): flat tensors
in, flat tensors out, the state as named tensors handed back by every call.

`--reference` also writes `reference.npz` beside each compiled package: the inputs of a
reset and a few steps, and what the eager model returned for them, which cuecast's tests
compare the compiled graphs against.
"""

import argparse
import os
import shutil

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def _example():
    """models/example/export.py, which defines TinyWorld."""
    import importlib.util

    path = os.path.join(HERE, "..", "example", "export.py")
    spec = importlib.util.spec_from_file_location("cuecast_example_world", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _example()

# ---------------------------------------------------------------- tiny-world


class TinyReset(torch.nn.Module):
    """reset(seed int64 [1]) -> (pos, heading, t, latent): TinyWorld.reset with a tensor seed."""

    def __init__(self, world):
        super().__init__()
        self.world = world

    def forward(self, seed):
        w = self.world
        n = w.texture
        dev = w.kernel.device
        u = torch.arange(n, dtype=torch.float32, device=dev).view(1, 1, n) / n
        v = torch.arange(n, dtype=torch.float32, device=dev).view(1, n, 1) / n
        c = torch.arange(w.latent_channels, dtype=torch.float32, device=dev).view(-1, 1, 1)
        s = torch.remainder(seed, 9973).to(torch.float32).view(1, 1, 1)
        fx = 1.0 + torch.floor(torch.remainder(c * 7.0 + s * 0.37, 5.0))
        fy = 1.0 + torch.floor(torch.remainder(c * 3.0 + s * 0.61, 5.0))
        latent = torch.sin(2.0 * 3.141592653589793 * (fx * u + fy * v) + c + s)
        zero = seed.to(torch.float32) * 0.0
        return (zero.repeat(2), zero.clone(), zero.clone(), latent)


class TinyStep(torch.nn.Module):
    """step(pos, heading, t, latent, frame [1], axes [1, 3], params [1, 2])
    -> (rgb [1, 3, H, W], depth [1, H, W], pos, heading, t, latent)."""

    def __init__(self, world):
        super().__init__()
        self.world = world

    def forward(self, pos, heading, t, latent, frame, axes, params):
        state = {"pos": pos, "heading": heading, "t": t, "latent": latent}
        rgb, depth, s = self.world.step(state, axes[0], params[0], "")
        return (rgb.unsqueeze(0), depth.unsqueeze(0), s["pos"], s["heading"], s["t"], s["latent"])


class TinyScript(torch.nn.Module):
    """The same two calls as one TorchScript module."""

    def __init__(self, world):
        super().__init__()
        self.r = TinyReset(world)
        self.s = TinyStep(world)

    @torch.jit.export
    def reset(self, seed: torch.Tensor):
        return self.r(seed)

    @torch.jit.export
    def step(self, pos: torch.Tensor, heading: torch.Tensor, t: torch.Tensor, latent: torch.Tensor,
             frame: torch.Tensor, axes: torch.Tensor, params: torch.Tensor):
        return self.s(pos, heading, t, latent, frame, axes, params)

    def forward(self, seed: torch.Tensor):
        return self.r(seed)


TINY_MANIFEST = """\
# tiny-world, compiled: the one-frame model of models/example in cuecast's in-process
# contract (made by models/compiled/export.py).
contract: 2
name: tiny-world
runtime: {runtime}
width: 256
height: 144
fps: 30
inputs:
  axes: [forward, strafe, yaw]
params:
  - {{name: brightness, default: 1.0, min: 0.2, max: 2.0, description: overall light level}}
  - {{name: speed, default: 1.0, min: 0.0, max: 5.0, description: how fast the camera moves}}
prompt: none
outputs: {{depth: true}}
"""

TINY_STATE = "state: [pos, heading, t, latent]\n"

TINY_PYTHON = '''\
"""tiny-world in eager PyTorch, for cuecast's python worker (made by
models/compiled/export.py): the same calls the compiled packages make."""

import torch

import tiny_world


class TinyWorldPy:
    def __init__(self, *, width, height, fps, device, config, package):
        self.device = torch.device(device)
        self.world = tiny_world.TinyWorld().to(self.device).eval()
        self.state = None

    def reset(self, seed, prompt, image):
        self.state = self.world.reset(int(seed), "")

    def step(self, inputs):
        axes = torch.as_tensor(inputs["axes"]).to(self.device)
        params = torch.as_tensor(inputs["params"]).to(self.device)
        rgbs, depths = [], []
        for i in range(int(inputs["frames"])):
            rgb, depth, self.state = self.world.step(self.state, axes[i], params[i], "")
            rgbs.append(rgb)
            depths.append(depth)
        return {"rgb": torch.stack(rgbs), "depth": torch.stack(depths)}
'''


def tiny_world(device):
    world = example.TinyWorld().to(device).eval()
    return {
        "reset": TinyReset(world),
        "step": TinyStep(world),
        "script": TinyScript(world),
    }


def tiny_inputs(k, frames, device):
    """Step k's inputs after the state: frame, axes, params."""
    f = torch.arange(k * frames, (k + 1) * frames, dtype=torch.int64, device=device)
    g = torch.Generator().manual_seed(100 + k)
    axes = (torch.rand(frames, 3, generator=g) * 2 - 1).to(device)
    params = torch.tensor([[1.0 + 0.2 * k, 1.0]] * frames, device=device)
    return [f, axes, params]


# ---------------------------------------------------------------- chunks

W, H, FPS = 256, 144, 16
GW, GH, C, WINDOW = 32, 18, 8, 4
KEYS = ["KeyW", "KeyA", "KeyS", "KeyD"]
M31 = 2147483647  # the minimal-standard generator's modulus: products stay in int64


def hash_noise(seed, frame, n):
    """n values in [-0.5, 0.5) from (seed, frame), by integer arithmetic only, so eager
    and compiled code give the same bits."""
    idx = torch.arange(n, dtype=torch.int64, device=seed.device)
    x = (torch.remainder(seed, M31) * 7 + frame * 104729 + idx * 7919 + 1) % M31
    for _ in range(3):
        x = (x * 48271) % M31
    return x.to(torch.float32) / M31 - 0.5


class ChunksModel(torch.nn.Module):
    def __init__(self, frames):
        super().__init__()
        self.frames = frames
        g = torch.Generator().manual_seed(1234)

        def w(*shape, gain=1.0):
            fan = shape[1] * shape[2] * shape[3] if len(shape) == 4 else shape[0]
            return torch.nn.Parameter(torch.randn(*shape, generator=g) * (gain / fan ** 0.5), requires_grad=False)

        self.act = w(len(KEYS) + 5, C, gain=1.5)
        self.par = w(2, C)
        self.q = w(C, C)
        self.k = w(C, C)
        self.d1 = w(16, C, 3, 3, gain=1.4)
        self.d2 = w(3, 16, 3, 3)
        self.sky = torch.nn.Parameter(torch.tensor([-0.6, 0.1, 1.2]).view(1, 3, 1, 1), requires_grad=False)

    def reset(self, seed):
        z = hash_noise(seed, torch.full([1], 1 << 20, dtype=torch.int64, device=seed.device), WINDOW * C * GH * GW)
        return (z.view(WINDOW, C, GH, GW) * 2.0, seed.clone())

    def frame(self, latents, seed, frame, keys, mouse, buttons, params):
        prev = latents[-1]
        grain, speed = params[0], params[1]
        # Keys and mouse move the world: A/D and the mouse shift the latent, W/S zoom it.
        tx = speed * (0.02 * mouse[0] + 0.1 * (keys[3] - keys[1]))
        ty = speed * 0.02 * mouse[1]
        zoom = 1.0 + speed * 0.05 * (keys[0] - keys[2])
        zero = tx * 0.0
        theta = torch.stack([torch.stack([1.0 / zoom, zero, tx]), torch.stack([zero, 1.0 / zoom, ty])])
        grid = F.affine_grid(theta.unsqueeze(0), [1, C, GH, GW], align_corners=False)
        warped = F.grid_sample(prev.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection",
                               align_corners=False)[0]
        # Attention over the window: the new frame draws on the frames most like it.
        pooled = latents.mean(dim=(2, 3))  # [WINDOW, C]
        score = (warped.mean(dim=(1, 2)) @ self.q) @ (pooled @ self.k).t() / C ** 0.5
        memory = torch.einsum("w,wchx->chx", torch.softmax(score, 0), latents)
        cond = torch.cat([keys, torch.tanh(mouse / 16.0), buttons]) @ self.act + params @ self.par
        noise = hash_noise(seed, frame, C * GH * GW).view(C, GH, GW)
        z = 0.8 * warped + 0.15 * memory + 0.2 * torch.tanh(cond).view(C, 1, 1) + grain * noise
        z = z / (z.std() + 1e-3)
        latents = torch.cat([latents[1:], z.unsqueeze(0)])
        h = F.silu(F.conv2d(z.unsqueeze(0), self.d1, padding=1))
        h = F.interpolate(h, size=(H // 2, W // 2), mode="bilinear", align_corners=False)
        logits = F.conv2d(h, self.d2, padding=1)
        logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
        rows = torch.linspace(1.0, -1.0, H, device=z.device).view(1, 1, H, 1)
        rgb = torch.sigmoid(0.6 * logits + self.sky * rows)
        return rgb[0], latents

    def step(self, latents, seed, frame, keys, mouse, buttons, params):
        out = []
        for i in range(self.frames):
            rgb, latents = self.frame(latents, seed, frame[i], keys[i], mouse[i], buttons[i], params[i])
            out.append(rgb)
        return (torch.stack(out), latents, seed)


class ChunksReset(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, seed):
        return self.m.reset(seed)


class ChunksStep(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, latents, seed, frame, keys, mouse, buttons, params):
        return self.m.step(latents, seed, frame, keys, mouse, buttons, params)


CHUNKS_MANIFEST = """\
# chunks: a small chunked latent world in cuecast's in-process contract (made by
# models/compiled/export.py): 3 frames after a reset, then 4 a step.
contract: 2
name: chunks
runtime: {runtime}
width: 256
height: 144
fps: 16
frames_per_step: 4
first_step_frames: 3
inputs:
  keys: [KeyW, KeyA, KeyS, KeyD]
  mouse: true
params:
  - {{name: grain, default: 0.2, min: 0.0, max: 1.0, description: fresh noise in each latent frame}}
  - {{name: speed, default: 1.0, min: 0.0, max: 3.0, description: how far keys and mouse move the world}}
prompt: none
state: [latents, seed]
"""


def chunks_inputs(start, frames, device):
    g = torch.Generator().manual_seed(200 + start)
    f = torch.arange(start, start + frames, dtype=torch.int64)
    keys = (torch.rand(frames, 4, generator=g) > 0.5).float()
    mouse = torch.randn(frames, 2, generator=g) * 8.0
    buttons = (torch.rand(frames, 3, generator=g) > 0.8).float()
    params = torch.tensor([[0.2, 1.0]] * frames)
    return [t.to(device) for t in (f, keys, mouse, buttons, params)]


# ---------------------------------------------------------------- exporting


def compile_aoti(graphs, path, device):
    """graphs: name -> (module, example inputs). One .pt2 holding each as its own model."""
    from torch._inductor.package import package_aoti

    compiled = {}
    for name, (module, args) in graphs.items():
        # Inputs that alias each other would be traced as one input: each its own copy.
        args = [a.clone() for a in args]
        program = torch.export.export(module, tuple(args), strict=False)
        # What the graph takes, which cuecast checks before each call and names in its
        # errors: "float32[2] int64[1] ...", one per input.
        signature = " ".join(
            f"{str(a.dtype).removeprefix('torch.')}[{','.join(str(d) for d in a.shape)}]" for a in args
        )
        compiled[name] = torch._inductor.aot_compile(
            program.module(),
            tuple(args),
            options={"aot_inductor.package": True, "aot_inductor.metadata": {"cuecast.inputs": signature}},
        )
    package_aoti(path, compiled)


def write(folder, manifest, files=()):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "cuecast-model.yaml"), "w") as f:
        f.write(manifest)
    for src, name in files:
        shutil.copy(src, os.path.join(folder, name))


def reference(path, reset, steps, seed, device):
    """Runs the eager model: a reset, then each (graph, module, inputs) step, threading the
    state; writes every call's inputs and outputs."""
    out = {}
    seed_t = torch.tensor([seed], dtype=torch.int64, device=device)
    state = list(reset(seed_t))
    out["00.reset.in.00"] = seed_t
    for i, t in enumerate(state):
        out[f"00.reset.out.{i:02d}"] = t
    for k, (graph, module, inputs) in enumerate(steps, start=1):
        args = state + inputs
        res = list(module(*args))
        for i, t in enumerate(args):
            out[f"{k:02d}.{graph}.in.{i:02d}"] = t
        for i, t in enumerate(res):
            out[f"{k:02d}.{graph}.out.{i:02d}"] = t
        state = res[len(res) - len(state):]
    np.savez(path, **{k: v.detach().cpu().numpy() for k, v in out.items()})


def export_tiny(out, runtimes, device, with_reference):
    m = tiny_world(device)
    seed = torch.tensor([7], dtype=torch.int64, device=device)
    state = list(m["reset"](seed))
    if "aoti" in runtimes:
        folder = os.path.join(out, "tiny-world-aoti")
        write(folder, TINY_MANIFEST.format(runtime="aoti") + TINY_STATE)
        compile_aoti({"reset": (m["reset"], [seed]), "step": (m["step"], state + tiny_inputs(0, 1, device))},
                     os.path.join(folder, "model.pt2"), device)
        if with_reference:
            steps = [("step", m["step"], tiny_inputs(k, 1, device)) for k in range(4)]
            reference(os.path.join(folder, "reference.npz"), m["reset"], steps, 7, device)
    if "torchscript" in runtimes:
        folder = os.path.join(out, "tiny-world-torchscript")
        write(folder, TINY_MANIFEST.format(runtime="torchscript") + TINY_STATE)
        torch.jit.script(m["script"]).save(os.path.join(folder, "model.pt"))
    if "python" in runtimes:
        folder = os.path.join(out, "tiny-world-python")
        write(folder, TINY_MANIFEST.format(runtime="python").replace("runtime: python", "runtime: python\nentry: model:TinyWorldPy"),
              [(example.__file__, "tiny_world.py")])
        with open(os.path.join(folder, "model.py"), "w") as f:
            f.write(TINY_PYTHON)


def export_chunks(out, runtimes, device, with_reference):
    first, then = ChunksModel(3).to(device).eval(), ChunksModel(4).to(device).eval()
    reset = ChunksReset(then)
    seed = torch.tensor([7], dtype=torch.int64, device=device)
    state = list(reset(seed))
    if "aoti" in runtimes:
        folder = os.path.join(out, "chunks-aoti")
        write(folder, CHUNKS_MANIFEST.format(runtime="aoti"))
        compile_aoti({
            "reset": (reset, [seed]),
            "first_step": (ChunksStep(first), state + chunks_inputs(0, 3, device)),
            "step": (ChunksStep(then), state + chunks_inputs(3, 4, device)),
        }, os.path.join(folder, "model.pt2"), device)
        if with_reference:
            steps = [("first_step", ChunksStep(first), chunks_inputs(0, 3, device))]
            steps += [("step", ChunksStep(then), chunks_inputs(3 + 4 * k, 4, device)) for k in range(2)]
            reference(os.path.join(folder, "reference.npz"), reset, steps, 7, device)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder to write the packages into")
    p.add_argument("--models", default="tiny-world,chunks")
    p.add_argument("--runtimes", default="aoti,torchscript,python")
    p.add_argument("--device", default="cpu", help="cpu or cuda: what the aoti graphs are compiled for")
    p.add_argument("--reference", action="store_true", help="write reference.npz beside each .pt2")
    a = p.parse_args()
    runtimes = set(a.runtimes.split(","))
    models = set(a.models.split(","))
    with torch.no_grad():
        if "tiny-world" in models:
            export_tiny(a.out, runtimes, a.device, a.reference)
        if "chunks" in models:
            export_chunks(a.out, runtimes, a.device, a.reference)


if __name__ == "__main__":
    main()
