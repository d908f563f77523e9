"""Steps a cuecast model package the way Python tools in this field run a model.

A plain loop: torch.jit.load, reset, then step after step under inference_mode, turning
each frame into the uint8 HxWx3 array a Python tool hands to its video output. Prints
JSON: per-step seconds for the step alone and for the step plus that frame.

    python python_loop.py PACKAGE STEPS WARMUP ACTIONS PARAMS PROMPT [DEVICE]
    (ACTIONS: how many action axes; PARAMS: comma-separated values; DEVICE: cpu or cuda)
"""
import json
import os
import sys
import time

import torch


def main() -> None:
    package, steps, warmup, actions, params, prompt = sys.argv[1:7]
    device = torch.device(sys.argv[7] if len(sys.argv) > 7 else "cpu")
    steps, warmup = int(steps), int(warmup)
    model = torch.jit.load(os.path.join(package, "model.pt"), map_location=device).eval()
    action = torch.zeros(int(actions), dtype=torch.float32, device=device)
    action[0] = 0.5
    values = torch.tensor([float(v) for v in params.split(",") if v], dtype=torch.float32, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    step_s, frame_s = [], []
    with torch.inference_mode():
        state = model.reset(7, prompt)
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            rgb, depth, state = model.step(state, action, values, prompt)
            sync()
            t1 = time.perf_counter()
            frame = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()
            t2 = time.perf_counter()
            if i >= warmup:
                step_s.append(t1 - t0)
                frame_s.append(t2 - t0)
    assert frame.shape[2] == 3
    json.dump({"step_s": step_s, "frame_s": frame_s, "threads": torch.get_num_threads(),
               "torch": torch.__version__}, sys.stdout)


if __name__ == "__main__":
    main()
