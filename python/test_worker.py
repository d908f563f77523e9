"""The worker's end of the protocol, against the golden messages cuecast's tests read too
(`protocol.golden.json`): each golden request is handled by the real worker, with a tiny
model and real shared memory, and each answer has the shape of the golden reply of its
kind. Run by cuecast's tests (`cargo test`), with the project's Python:

    python -m unittest discover -s python -p 'test_*.py'
"""

import json
import mmap
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import cuecast_worker  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "protocol.golden.json")

MODEL = """
import numpy as np

class Kv:
    def __init__(self, *, width, height, fps, device, config, package):
        self.w, self.h, self.layers, self.frame = width, height, config["layers"], 0

    def reset(self, seed, prompt, image):
        self.frame = 0 if image is None else int(image.mean())

    def set_prompt(self, text, transition_s):
        self.prompt = text

    def step(self, inputs):
        n = inputs["frames"]
        assert inputs["camera_pose"].shape == (n, 4, 4) and inputs["intrinsics"].shape == (n, 3, 3)
        assert inputs["prompt"] == "snow" and inputs["prompt_mix"].shape == (n,)
        assert inputs["video"].shape == (2, 18, 32, 3) and inputs["video"].dtype == np.uint8
        assert inputs["audio"].shape == (400, 1) and inputs["audio"].dtype == np.float32
        self.frame += n
        return {"rgb": np.full((n, self.h, self.w, 3), self.frame % 256, np.uint8),
                "audio": np.zeros((n * 200, 1), np.float32)}

    def save_state(self):
        return {"frame": np.array([self.frame], np.int64)}

    def load_state(self, state):
        self.frame = int(state["frame"][0])
"""


def kinds(replies):
    """The golden replies by what they answer."""
    done = [r for r in replies if r["op"] == "done"]
    return {
        "step": next(r for r in done if "frames" in r),
        "save_state": next(r for r in done if "bytes" in r),
        "plain": next(r for r in done if set(r) == {"op", "id"}),
        "error": next(r for r in replies if r["op"] == "error"),
    }


class GoldenMessages(unittest.TestCase):
    def setUp(self):
        with open(GOLDEN) as f:
            golden = json.load(f)
        self.requests = {m["op"]: m for m in golden["requests"]}
        self.replies = kinds(golden["replies"])
        self.dir = tempfile.TemporaryDirectory()
        with open(os.path.join(self.dir.name, "model.py"), "w") as f:
            f.write(MODEL)
        load = dict(self.requests["load"], package=self.dir.name)
        fd = os.memfd_create("golden")
        os.ftruncate(fd, load["shm"]["bytes"])
        load["shm"] = dict(load["shm"], fd=fd)
        self.worker = cuecast_worker.Worker(None, load)

    def tearDown(self):
        sys.modules.pop("model", None)
        sys.path.remove(self.dir.name)
        self.dir.cleanup()

    def assertShaped(self, reply, golden):
        self.assertEqual(set(reply), set(golden), reply)
        for k in golden:
            if golden[k] is not None:
                self.assertIsInstance(reply[k], type(golden[k]), (k, reply))

    def test_every_request_is_one_the_worker_answers_as_the_golden_replies_say(self):
        ops = {m for m in self.requests} - {"load", "quit"}
        self.assertEqual(ops, {"reset", "set_prompt", "step", "save_state", "load_state"})
        self.assertShaped(self.worker.handle(self.requests["reset"]), self.replies["plain"])
        self.assertShaped(self.worker.handle(self.requests["set_prompt"]), self.replies["plain"])
        step = self.worker.handle(self.requests["step"])
        self.assertShaped(step, self.replies["step"])
        self.assertEqual((step["id"], step["frames"], step["depth"]), (3, 2, False))
        path = os.path.join(self.dir.name, "state.safetensors")
        saved = self.worker.handle(dict(self.requests["save_state"], path=path))
        self.assertShaped(saved, self.replies["save_state"])
        loaded = self.worker.handle(dict(self.requests["load_state"], path=path))
        self.assertShaped(loaded, self.replies["plain"])

    def test_a_failing_request_answers_as_the_golden_error_says(self):
        bad = dict(self.requests["step"], inputs=dict(self.requests["step"]["inputs"], prompt="rain"))
        reply = self.worker.handle(bad)
        self.assertShaped(reply, self.replies["error"])
        self.assertEqual((reply["id"], reply["stage"]), (3, "step"))
        unknown = self.worker.handle({"op": "dance", "id": 9})
        self.assertEqual((unknown["op"], unknown["stage"]), ("error", "dance"))


if __name__ == "__main__":
    unittest.main()
