"""Tests for cuecast's reference video-to-video model, models/restyle.

    python -m unittest discover -s models/tests -v      (from the repository root)

The model is loaded the way cuecast's worker loads it (model.py imported by path, the
class constructed with width/height/fps/device/config/package) and checked for what its
host relies on: its frames depend on its input video and on the prompt by a clear
margin, the same inputs give the same frames, and save_state -> new instance ->
load_state continues bit-identically.
"""

import importlib.util
import os
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(os.path.dirname(HERE), "restyle")
W, H = 256, 144
DIFF_MIN = 4.0  # mean |difference| in 0-255 units: far above rounding


def load():
    spec = importlib.util.spec_from_file_location("restyle_model", os.path.join(PACKAGE, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Restyle


def new():
    return load()(width=W, height=H, fps=15.0, device="cpu", config={"weights_seed": 2718}, package=PACKAGE)


def camera(kind):
    """A frame of a 'camera': a lit box on a gradient (a) or stripes (b)."""
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.zeros((H, W, 3), np.uint8)
    if kind == "a":
        img[..., 0] = (xx * 255 // (W - 1)).astype(np.uint8)
        img[..., 2] = 90
        img[40:100, 80:170] = (230, 220, 60)
    else:
        img[..., 1] = np.where((xx // 16) % 2 == 0, 200, 30).astype(np.uint8)
        img[..., 2] = (yy * 255 // (H - 1)).astype(np.uint8)
    return img


def step_inputs(frame, prompt="neon city", previous=None, mix=1.0):
    return {
        "frames": 1,
        "frame": np.array([0]),
        "time_s": np.array([0.0]),
        "video": frame[None].copy(),
        "prompt": prompt,
        "prompt_previous": previous,
        "prompt_mix": np.array([mix], np.float32),
        "params": np.array([[0.8, 0.25]], np.float32),
    }


def run(frames, prompt="neon city", model=None):
    model = model or new()
    if model is not None and getattr(model, "last", None) is None:
        model.reset(1, prompt, None)
    return np.concatenate([model.step(step_inputs(f, prompt))["rgb"] for f in frames])


def mad(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


class Restyle(unittest.TestCase):
    def test_frames_have_the_declared_shape(self):
        out = run([camera("a")])
        self.assertEqual((out.shape, out.dtype), ((1, H, W, 3), np.uint8))

    def test_the_output_follows_the_input_video(self):
        a, b = run([camera("a")] * 3), run([camera("b")] * 3)
        self.assertGreater(mad(a, b), DIFF_MIN)

    def test_the_output_follows_the_prompt(self):
        a, b = run([camera("a")] * 3, "neon city"), run([camera("a")] * 3, "oil painting")
        self.assertGreater(mad(a, b), DIFF_MIN)

    def test_the_same_inputs_give_the_same_frames(self):
        frames = [camera("a"), camera("b"), camera("a")]
        np.testing.assert_array_equal(run(frames), run(frames))

    def test_a_saved_state_continues_bit_identically(self):
        frames = [camera("a"), camera("b"), camera("a"), camera("b")]
        whole = run(frames)
        first = new()
        run(frames[:2], model=first)
        state = {k: v.copy() for k, v in first.save_state().items()}
        second = new()
        second.reset(1, "neon city", None)
        second.load_state(state)
        np.testing.assert_array_equal(run(frames[2:], model=second), whole[2:])


if __name__ == "__main__":
    unittest.main()
