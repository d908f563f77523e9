"""Steps a cuecast contract-v2 Python model package in a bare Python loop.

    python models/bench_loop.py PACKAGE_DIR --chunks N [--device cpu] [--width W --height H] [--threads T]

Constructs the package's model class the way cuecast's worker does (imports PACKAGE_DIR/
model.py, builds the class named by the manifest's `entry` with width, height, fps,
device, config and package), resets it, then steps it N times with fixed, valid inputs
built from the manifest (zeros of the declared shapes, identity camera pose, default
params): `first_step_frames` frames first, then `frames_per_step`. Prints one JSON line:

    {"chunks": N, "frames_per_step": F, "chunk_ms": [...], "median_ms": m}

with each chunk's wall time (time.perf_counter; torch.cuda.synchronize() after each step
on CUDA). cuecast's benchmark compares this loop against the same model hosted through
its worker.

The manifest is read with a minimal line parser (no PyYAML): top-level scalars, the
`inputs` block, the names and defaults of `params`, and a flat `config` map.
"""

import argparse
import importlib.util
import json
import os
import re
import statistics
import sys
import time

import numpy as np


def _scalar(text):
    text = text.strip()
    if not text:
        return None
    if text.startswith("[") and text.endswith("]"):
        return [_scalar(v) for v in text[1:-1].split(",") if v.strip()]
    if text.startswith("{") and text.endswith("}"):
        out = {}
        for item in text[1:-1].split(","):
            if ":" in item:
                k, _, v = item.partition(":")
                out[k.strip()] = _scalar(v)
        return out
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("null", "~"):
        return None
    if re.fullmatch(r"[0-9]+/[0-9]+", text):
        a, b = text.split("/")
        return float(a) / float(b)
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def read_manifest(path):
    """The cuecast-model.yaml keys these tools need, as a dict (inputs and params nested)."""
    if os.path.isdir(path):
        path = os.path.join(path, "cuecast-model.yaml")
    top, section = {}, None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
            if not line.strip():
                continue
            body = line.strip()
            if not line[0].isspace():
                key, _, val = body.partition(":")
                key, val = key.strip(), val.strip()
                section = key if not val else None
                top[key] = _scalar(val) if val else ([] if key == "params" else {})
            elif section == "params" and body.startswith("-"):
                item = body[1:].strip()
                fields = dict(re.findall(r"(name|default|min|max)\s*:\s*([^,}]+)", item))
                top["params"].append({k: _scalar(v) for k, v in fields.items()})
            elif section is not None:
                key, _, val = body.partition(":")
                top[section][key.strip()] = _scalar(val)
    return top


def load_class(package):
    """Import PACKAGE/model.py by path; returns (the manifest's entry class, manifest)."""
    package = os.path.abspath(package)
    manifest = read_manifest(package)
    module_name, _, class_name = str(manifest["entry"]).partition(":")
    name = "cuecast_pkg_" + re.sub(r"\W", "_", os.path.basename(package)) + "_" + module_name
    spec = importlib.util.spec_from_file_location(name, os.path.join(package, module_name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name), manifest


def load_model(package, device="cpu", width=None, height=None, config=None):
    """Construct the package's model as cuecast's worker does; returns (model, manifest)."""
    package = os.path.abspath(package)
    cls, manifest = load_class(package)
    model = cls(width=int(width or manifest["width"]), height=int(height or manifest["height"]),
                fps=float(manifest["fps"]), device=device,
                config=dict(manifest.get("config") or {}) if config is None else config, package=package)
    return model, manifest


def make_inputs(manifest, frames, first_frame, width, height):
    """Fixed, valid inputs for `frames` frames, with the shapes the manifest declares."""
    fps = float(manifest["fps"])
    inp = manifest.get("inputs") or {}
    idx = np.arange(first_frame, first_frame + frames, dtype=np.int64)
    out = {"frames": int(frames), "frame": idx, "time_s": idx.astype(np.float64) / fps}
    keys = inp.get("keys") or []
    if keys:
        out["keys"] = np.zeros((frames, len(keys)), np.float32)
    if inp.get("mouse"):
        out["mouse"] = np.zeros((frames, 2), np.float32)
        out["buttons"] = np.zeros((frames, 3), np.float32)
    if inp.get("axes"):
        out["axes"] = np.zeros((frames, len(inp["axes"])), np.float32)
    if inp.get("camera_pose"):
        out["camera_pose"] = np.tile(np.eye(4, dtype=np.float32), (frames, 1, 1))
        k = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1]], np.float32)
        out["intrinsics"] = np.tile(k, (frames, 1, 1))
    params = manifest.get("params") or []
    if params:
        out["params"] = np.tile(np.array([float(p["default"]) for p in params], np.float32), (frames, 1))
    if manifest.get("prompt") == "every_step":
        out["prompt"], out["prompt_previous"] = "", None
        out["prompt_mix"] = np.ones(frames, np.float32)
    return out


def run(package, chunks, device="cpu", width=None, height=None):
    import torch

    model, manifest = load_model(package, device, width, height)
    w, h = int(width or manifest["width"]), int(height or manifest["height"])
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    first, per = int(manifest["first_step_frames"]), int(manifest["frames_per_step"])
    model.reset(0, "", None)
    sync()
    chunk_ms, frame = [], 0
    for i in range(chunks):
        n = first if i == 0 else per
        inputs = make_inputs(manifest, n, frame, w, h)
        t0 = time.perf_counter()
        model.step(inputs)
        sync()
        chunk_ms.append((time.perf_counter() - t0) * 1000.0)
        frame += n
    return {"chunks": chunks, "frames_per_step": per, "chunk_ms": [round(v, 3) for v in chunk_ms],
            "median_ms": round(statistics.median(chunk_ms), 3) if chunk_ms else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package")
    ap.add_argument("--chunks", type=int, required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default), as cuecast's worker sets them")
    args = ap.parse_args(argv)
    try:
        import torch

        # As the worker does: no autograd, and the threads cuecast gives the model.
        torch.set_grad_enabled(False)
        if args.threads > 0:
            torch.set_num_threads(args.threads)
    except ImportError:
        pass
    print(json.dumps(run(args.package, args.chunks, args.device, args.width, args.height)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
