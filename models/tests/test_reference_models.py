"""Tests for cuecast's two reference contract-v2 Python world models.

    python -m unittest discover -s models/tests -v      (from the repository root)
    python models/tests/test_reference_models.py

- models/kv-chunks: chunked causal transformer with a rolling, in-place KV cache
  (Self-Forcing / Matrix-Game 2.0 shaped): 3 frames first, then 4; set_prompt; no rollback.
- models/latent-window: one frame per step from a window of recent latents and 25 action
  values (Oasis / DIAMOND shaped); state_rollback: copy.

Each model is loaded the way cuecast's worker loads it (model.py imported by path, the
manifest's `entry` class constructed with width/height/fps/device/config/package) on the
CPU, with one thread, and checked for: output shapes and dtypes of the first and later
chunks, determinism across instances, every declared input kind changing the frames by a
clear margin, save_state -> new instance -> load_state continuing bit-identically, and a
compact saved state. The manifest is read with bench_loop.py's minimal parser (no PyYAML).
"""

import importlib.util
import os
import sys
import unittest

import numpy as np
import torch

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.dirname(HERE)
_spec = importlib.util.spec_from_file_location("cuecast_bench_loop", os.path.join(MODELS, "bench_loop.py"))
bench_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_loop)

# The manifest keys the brief allows; anything else would be refused by cuecast.
ALLOWED_KEYS = {"contract", "name", "runtime", "entry", "width", "height", "fps", "frames_per_step",
                "first_step_frames", "latency_frames", "inputs", "prompt", "state_rollback", "save_state",
                "vram_gb", "warmup_s", "params", "outputs", "config"}
DIFF_MIN = 0.004  # mean |difference| in [0, 1] units (about 1/255): far above float noise
STATE_MAX_BYTES = 1 << 20


def to_float(rgb):
    """Frames (torch or numpy, uint8 [T,H,W,3] or float [T,3,H,W]) -> float64 numpy [T,3,H,W]."""
    a = rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if a.dtype == np.uint8:
        return a.transpose(0, 3, 1, 2).astype(np.float64) / 255.0
    return a.astype(np.float64)


def raw(rgb):
    return rgb.detach().cpu().numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)


def mad(a, b):
    return float(np.abs(to_float(a) - to_float(b)).mean())


def state_to_numpy(state):
    out = {}
    for k, v in state.items():
        out[k] = v.detach().cpu().numpy().copy() if isinstance(v, torch.Tensor) else np.array(v)
    return out


def image(kind, h, w):
    img = np.zeros((h, w, 3), np.uint8)
    if kind == "a":
        img[: h // 2] = (90, 150, 230)
        img[h // 2:] = (60, 140, 50)
        img[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = (210, 40, 40)
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        img[..., 0] = (xx * 255 // max(w - 1, 1)).astype(np.uint8)
        img[..., 1] = (yy * 255 // max(h - 1, 1)).astype(np.uint8)
        img[..., 2] = 40
    return img


class Stream:
    """Per-frame inputs for a whole run; chunk(a, n) slices frames [a, a+n) into a step's inputs."""

    def __init__(self, manifest, frames, width, height, pattern=True):
        self.base = bench_loop.make_inputs(manifest, frames, 0, width, height)
        self.m = manifest
        if pattern and "keys" in self.base:  # varying, valid inputs so continuations are meaningful
            k = self.base["keys"]
            for t in range(frames):
                k[t, t % k.shape[1]] = 1.0 if t % 3 else 0.0
            self.base["mouse"][:, 0] = np.sin(np.arange(frames)) * 6
            self.base["mouse"][:, 1] = np.cos(np.arange(frames) * 0.7) * 3
            self.base["buttons"][::4, 0] = 1.0

    def chunk(self, a, n):
        out = {}
        for k, v in self.base.items():
            out[k] = n if k == "frames" else (v[a:a + n].copy() if isinstance(v, np.ndarray) else v)
        return out


class ReferenceModelTests:
    """Shared checks; subclasses set PACKAGE and EXPECT, and add model-specific ones."""

    PACKAGE = None
    EXPECT = {}

    @classmethod
    def setUpClass(cls):
        cls.dir = os.path.join(MODELS, cls.PACKAGE)
        cls.cls, cls.m = bench_loop.load_class(cls.dir)
        cls.W, cls.H = int(cls.m["width"]), int(cls.m["height"])
        cls.first, cls.per = int(cls.m["first_step_frames"]), int(cls.m["frames_per_step"])

    def new(self, width=None, height=None):
        return self.cls(width=width or self.W, height=height or self.H, fps=float(self.m["fps"]),
                        device="cpu", config=dict(self.m.get("config") or {}), package=self.dir)

    def chunks(self, n):
        """The chunk sizes the host asks for after a reset: first_step_frames, then frames_per_step."""
        return [self.first] + [self.per] * (n - 1)

    def run_model(self, model, stream, sizes, start=0):
        frames = []
        for n in sizes:
            frames.append(raw(model.step(stream.chunk(start, n))["rgb"]))
            start += n
        return np.concatenate(frames)

    def fresh_run(self, seed=3, prompt="a green forest", img=None, stream=None, sizes=None, before=None):
        model = self.new()
        model.reset(seed, prompt, img)
        if before:
            before(model)
        sizes = sizes or self.chunks(2)
        stream = stream or Stream(self.m, sum(sizes), self.W, self.H, pattern=False)
        return self.run_model(model, stream, sizes)

    def assert_changes(self, a, b, what):
        d = mad(a, b)
        self.assertGreater(d, DIFF_MIN, f"{self.PACKAGE}: {what} changed the frames by only {d:.6f}")
        if os.environ.get("SHOW_DIFFS"):
            print(f"  {self.PACKAGE}: {what}: {d:.4f}", file=sys.stderr)
        return d

    # ------------------------------------------------------------------ shared tests
    def test_manifest(self):
        self.assertLessEqual(set(self.m), ALLOWED_KEYS, "unexpected manifest keys")
        for k, v in self.EXPECT.items():
            self.assertEqual(self.m[k], v, k)
        self.assertEqual(self.m["contract"], 2)
        self.assertEqual(self.m["runtime"], "python")
        self.assertEqual(self.m["save_state"], True)
        self.assertTrue(os.path.isfile(os.path.join(self.dir, "model.py")))

    def test_shapes_and_dtypes(self):
        model = self.new()
        model.reset(1, "", None)
        stream = Stream(self.m, self.first + 2 * self.per, self.W, self.H)
        start = 0
        for n in self.chunks(3):
            out = model.step(stream.chunk(start, n))
            start += n
            self.assertIn("rgb", out)
            rgb = out["rgb"]
            self.assertIsInstance(rgb, (torch.Tensor, np.ndarray))
            a = raw(rgb)
            if a.dtype == np.uint8:
                self.assertEqual(a.shape, (n, self.H, self.W, 3))
            else:
                self.assertIn(a.dtype, (np.float32, np.float16))
                self.assertEqual(a.shape, (n, 3, self.H, self.W))
                self.assertTrue(np.isfinite(a).all())
                self.assertGreaterEqual(a.min(), 0.0)
                self.assertLessEqual(a.max(), 1.0)
            if not self.m["outputs"].get("depth"):
                self.assertIsNone(out.get("depth"))
            f = to_float(rgb)
            self.assertGreater(f.std(), 0.03, "frames are flat")

    def test_other_size(self):
        w, h = 200, 120  # not a multiple of the latent grid: sizes come from the constructor
        model = self.new(w, h)
        model.reset(1, "x", image("b", h, w))
        stream = Stream(self.m, self.first, w, h)
        a = to_float(model.step(stream.chunk(0, self.first))["rgb"])
        self.assertEqual(a.shape, (self.first, 3, h, w))

    def test_deterministic(self):
        stream = Stream(self.m, sum(self.chunks(3)), self.W, self.H)
        img = image("a", self.H, self.W)
        a = self.fresh_run(seed=11, img=img, stream=stream, sizes=self.chunks(3))
        b = self.fresh_run(seed=11, img=img, stream=stream, sizes=self.chunks(3))
        self.assertTrue(np.array_equal(a, b), "same seed and inputs gave different frames")
        self.assertGreater(mad(a[:1], a[-1:]), DIFF_MIN, "frames do not evolve")

    def test_seed_and_image_change_frames(self):
        base = self.fresh_run(seed=3)
        self.assert_changes(base, self.fresh_run(seed=4), "seed")
        img_a = self.fresh_run(img=image("a", self.H, self.W))
        self.assert_changes(base, img_a, "image vs none")
        self.assert_changes(img_a, self.fresh_run(img=image("b", self.H, self.W)), "image a vs b")

    def test_mouse_and_buttons_change_frames(self):
        sizes = self.chunks(2)
        base = self.fresh_run(sizes=sizes)
        for what, key, col, value in (("mouse dx", "mouse", 0, 12.0), ("mouse dy", "mouse", 1, -12.0),
                                      ("left button", "buttons", 0, 1.0), ("middle button", "buttons", 1, 1.0),
                                      ("right button", "buttons", 2, 1.0)):
            s = Stream(self.m, sum(sizes), self.W, self.H, pattern=False)
            s.base[key][:, col] = value
            self.assert_changes(base, self.fresh_run(stream=s, sizes=sizes), what)

    def test_keys_change_frames(self):
        sizes = self.chunks(2)
        base = self.fresh_run(sizes=sizes)
        for i, code in enumerate(self.m["inputs"]["keys"]):
            s = Stream(self.m, sum(sizes), self.W, self.H, pattern=False)
            s.base["keys"][:, i] = 1.0
            self.assert_changes(base, self.fresh_run(stream=s, sizes=sizes), f"key {code}")

    def test_save_load_continuation(self):
        sizes = self.chunks(5)
        stream = Stream(self.m, sum(sizes), self.W, self.H)
        a = self.new()
        a.reset(21, "a stone bridge", image("a", self.H, self.W))
        done = sum(sizes[:2])
        self.run_model(a, stream, sizes[:2])
        state = a.save_state()
        cont = self.run_model(a, stream, sizes[2:], start=done)
        b = self.new()
        b.load_state(state_to_numpy(state))
        # After load_state the host asks first_step_frames first: re-chunk the same frames.
        total, rechunk = len(cont), []
        while sum(rechunk) < total:
            rechunk.append(min(self.first if not rechunk else self.per, total - sum(rechunk)))
        got = self.run_model(b, stream, rechunk, start=done)
        self.assertTrue(np.array_equal(cont, got), "continuation after load_state differs")
        # The saved dict is a snapshot: the steps after save_state did not change it.
        c = self.new()
        c.load_state(state_to_numpy(state))
        self.assertTrue(np.array_equal(cont, self.run_model(c, stream, sizes[2:], start=done)))

    def test_state_is_compact(self):
        model = self.new()
        model.reset(2, "x", image("a", self.H, self.W))
        model.step(Stream(self.m, self.first, self.W, self.H).chunk(0, self.first))
        state = model.save_state()
        self.assertIsInstance(state, dict)
        size = 0
        for k, v in state.items():
            self.assertIsInstance(k, str)
            self.assertIsInstance(v, (np.ndarray, torch.Tensor))
            size += v.numel() * v.element_size() if isinstance(v, torch.Tensor) else v.nbytes
        self.assertLess(size, STATE_MAX_BYTES, f"save_state is {size} bytes")
        print(f"\n  {self.PACKAGE}: save_state {size} bytes", file=sys.stderr, end=" ")

    def test_bench_loop(self):
        res = bench_loop.run(self.dir, 2, "cpu")
        self.assertEqual(sorted(res), ["chunk_ms", "chunks", "frames_per_step", "median_ms"])
        self.assertEqual(res["chunks"], 2)
        self.assertEqual(len(res["chunk_ms"]), 2)
        self.assertEqual(res["frames_per_step"], self.per)


class KvChunksTests(ReferenceModelTests, unittest.TestCase):
    PACKAGE = "kv-chunks"
    EXPECT = {"name": "kv-chunks", "entry": "model:KvChunks", "width": 256, "height": 144, "fps": 16,
              "frames_per_step": 4, "first_step_frames": 3, "prompt": "set_prompt", "state_rollback": "none"}

    def test_camera_pose_changes_frames(self):
        sizes = self.chunks(2)
        base = self.fresh_run(sizes=sizes)
        yaw, pitch = np.radians(30), np.radians(15)
        turn = np.eye(4, dtype=np.float32)  # world-to-camera: turned and moved
        turn[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
        turn[:3, 3] = [1.0, -0.5, 3.0]
        tilt = np.eye(4, dtype=np.float32)  # world-to-camera of a camera looking up (Rx(-pitch))
        tilt[1:3, 1:3] = [[np.cos(pitch), np.sin(pitch)], [-np.sin(pitch), np.cos(pitch)]]
        for what, pose in (("camera pose (yaw + move)", turn), ("camera pose (pitch)", tilt)):
            s = Stream(self.m, sum(sizes), self.W, self.H, pattern=False)
            s.base["camera_pose"][:] = pose
            self.assert_changes(base, self.fresh_run(stream=s, sizes=sizes), what)
        s = Stream(self.m, sum(sizes), self.W, self.H, pattern=False)
        s.base["intrinsics"][:, 0, 0] *= 2.0
        s.base["intrinsics"][:, 1, 1] *= 2.0
        self.assert_changes(base, self.fresh_run(stream=s, sizes=sizes), "intrinsics")

    def test_prompt_changes_frames(self):
        sizes = self.chunks(3)
        base = self.fresh_run(sizes=sizes)
        self.assert_changes(base, self.fresh_run(prompt="a desert at night", sizes=sizes), "reset prompt")
        stream = Stream(self.m, sum(sizes), self.W, self.H, pattern=False)

        def run_with(switch):
            model = self.new()
            model.reset(3, "a green forest", None)
            first = self.run_model(model, stream, sizes[:1])
            switch(model)
            return np.concatenate([first, self.run_model(model, stream, sizes[1:], start=sizes[0])])

        cut = run_with(lambda m: m.set_prompt("a desert at night", 0.0))
        self.assertTrue(np.array_equal(base[: sizes[0]], cut[: sizes[0]]))
        self.assert_changes(base[sizes[0]:], cut[sizes[0]:], "set_prompt (cut)")
        blend = run_with(lambda m: m.set_prompt("a desert at night", 1.0))
        self.assert_changes(base[sizes[0]:], blend[sizes[0]:], "set_prompt (transition)")
        self.assert_changes(cut[sizes[0]:], blend[sizes[0]:], "transition vs cut")

    def test_params_change_frames(self):
        sizes = self.chunks(2)
        base = self.fresh_run(sizes=sizes)
        names = [p["name"] for p in self.m["params"]]
        for i, value in ((names.index("grain"), 0.8), (names.index("speed"), 2.5)):
            s = Stream(self.m, sum(sizes), self.W, self.H, pattern=False)
            s.base["params"][:, i] = value
            self.assert_changes(base, self.fresh_run(stream=s, sizes=sizes), f"param {names[i]}")

    def test_save_load_during_prompt_transition(self):
        sizes = self.chunks(4)
        stream = Stream(self.m, sum(sizes), self.W, self.H)
        a = self.new()
        a.reset(8, "old town", None)
        self.run_model(a, stream, sizes[:1])
        a.set_prompt("snowy mountains", 0.0)  # a hard cut re-caches the window
        self.run_model(a, stream, sizes[1:2], start=sizes[0])
        a.set_prompt("a calm sea", 1.5)  # still blending when saved
        state = state_to_numpy(a.save_state())
        done = sum(sizes[:2])
        cont = self.run_model(a, stream, sizes[2:], start=done)
        b = self.new()
        b.load_state(state)
        self.assertTrue(np.array_equal(cont, self.run_model(b, stream, sizes[2:], start=done)))

    def test_kv_cache_written_in_place(self):
        model = self.new()
        model.reset(1, "x", None)
        ptr_k, ptr_v = model.K.data_ptr(), model.V.data_ptr()
        before = model.K.clone()
        stream = Stream(self.m, self.first + self.per, self.W, self.H)
        self.run_model(model, stream, self.chunks(2))
        self.assertEqual((ptr_k, ptr_v), (model.K.data_ptr(), model.V.data_ptr()))
        self.assertFalse(torch.equal(before, model.K))
        self.assertEqual(tuple(model.K.shape), (model.L, model.window * model.N, model.D))


class LatentWindowTests(ReferenceModelTests, unittest.TestCase):
    PACKAGE = "latent-window"
    EXPECT = {"name": "latent-window", "entry": "model:LatentWindow", "fps": 20, "frames_per_step": 1,
              "first_step_frames": 1, "prompt": "none", "state_rollback": "copy"}

    def test_25_action_values(self):
        inp = self.m["inputs"]
        self.assertEqual(len(inp["keys"]), 20)
        self.assertEqual(len(set(inp["keys"])), 20)
        self.assertTrue(inp["mouse"])
        self.assertEqual(len(inp["keys"]) + 2 + 3, 25)

    def test_rollback_copy(self):
        # state_rollback: copy: the host saves before a step and, if it fails, puts it back.
        stream = Stream(self.m, 12, self.W, self.H)
        model = self.new()
        model.reset(5, "", image("b", self.H, self.W))
        self.run_model(model, stream, [1] * 6)
        saved = model.save_state()
        first = self.run_model(model, stream, [1] * 3, start=6)
        model.load_state(state_to_numpy(saved))
        self.assertTrue(np.array_equal(first, self.run_model(model, stream, [1] * 3, start=6)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
