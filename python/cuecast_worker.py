"""cuecast's model worker: runs a model's own Python code in a process of its own.

cuecast (the host) starts this file with the model's interpreter:

    python -u cuecast_worker.py --socket PATH

and talks to it over that Unix socket. Why a process of its own: a model's code, its
licence, its CUDA faults (device asserts, illegal memory access, out of memory) and its
hangs stay out of the broadcast; the host kills and restarts the worker and the show goes
on. Only the standard library and numpy are needed here; torch is used when the model
returns torch tensors (it has imported torch itself by then).

Protocol (docs/model-contract.md, "The worker protocol"): each message is a 4-byte
little-endian length and that many bytes of UTF-8 JSON. Frames never cross the socket:
the host creates a shared-memory file, hands it to this process as an open descriptor
named in `load`, and tells each `step` where to write; the worker writes the chunk
there as RGB bytes at the native size (and depth as float32 after it) and answers with
a short `done` message. `protocol.golden.json` beside this file holds one message of
each kind, which cuecast's tests and this worker's (`test_worker.py`) read alike. A
thread sends `alive` every quarter second, so a process that stops between requests (a
deadlock, SIGSTOP) is noticed; during a step, its deadline (`step_timeout_s`) is what
the host watches.
"""

import argparse
import importlib
import json
import mmap
import os
import socket
import struct
import sys
import threading
import time
import traceback

PROTOCOL = 1
MAX_MESSAGE = 16 << 20
HEARTBEAT_S = 0.25

np = None  # numpy, imported once the host has said hello back (after `load`)


class Refused(Exception):
    """An error the host shows as it is (no traceback): a model that breaks the contract."""


class Channel:
    """The socket to the host; sends may come from two threads (replies, heartbeats)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lock = threading.Lock()

    def send(self, message):
        data = json.dumps(message, allow_nan=False).encode()
        with self.lock:
            self.sock.sendall(struct.pack("<I", len(data)) + data)

    def recv(self):
        head = self._exactly(4)
        (n,) = struct.unpack("<I", head)
        if n > MAX_MESSAGE:
            raise Refused(f"a message of {n} bytes from the host is over {MAX_MESSAGE}")
        return json.loads(self._exactly(n))

    def _exactly(self, n):
        parts = []
        while n:
            b = self.sock.recv(min(n, 1 << 20))
            if not b:
                # The host is gone: nothing more can be asked of this worker.
                os._exit(0)
            parts.append(b)
            n -= len(b)
        return b"".join(parts)


def heartbeat(channel):
    while True:
        time.sleep(HEARTBEAT_S)
        try:
            channel.send({"op": "alive"})
        except OSError:
            os._exit(0)


def error_text(e):
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def describe(x):
    if is_torch(x) or (np is not None and isinstance(x, np.ndarray)):
        dtype = str(x.dtype).replace("torch.", "")
        where = f" on {x.device}" if is_torch(x) and x.device.type != "cpu" else ""
        return f"{dtype} {list(x.shape)}{where}"
    return type(x).__name__


class Worker:
    def __init__(self, channel, load):
        global np
        import numpy

        np = numpy
        self.channel = channel
        self.width = int(load["width"])
        self.height = int(load["height"])
        self.device = load["device"]
        self.prompt_mode = load["prompt"]
        self.rollback = load["state_rollback"]
        self.has_state = bool(load["save_state"])
        self.state_limit = int(load["state_limit_bytes"])
        fd = int(load["shm"]["fd"])
        try:
            self.shm = mmap.mmap(fd, int(load["shm"]["bytes"]))
        finally:
            os.close(fd)
        self.check_memory(float(load.get("vram_gb") or 0))
        package = load["package"]
        module_name, _, class_name = load["entry"].partition(":")
        sys.path.insert(0, package)
        started = time.perf_counter()
        try:
            module = importlib.import_module(module_name)
        except Exception as e:
            raise Refused(f"importing {module_name}.py failed: {error_text(e)}") from e
        cls = getattr(module, class_name, None)
        if cls is None:
            raise Refused(f"{module_name}.py has no class {class_name}")
        wanted = ["reset", "step"]
        if self.prompt_mode == "set_prompt":
            wanted.append("set_prompt")
        if self.has_state:
            wanted += ["save_state", "load_state"]
        missing = [m for m in wanted if not callable(getattr(cls, m, None))]
        if missing:
            raise Refused(f"{class_name} has no method {', '.join(missing)} (the manifest asks for it)")
        threads = int(load.get("threads") or 0)
        torch = sys.modules.get("torch")
        if torch is not None:
            if threads > 0:
                torch.set_num_threads(threads)
            torch.set_grad_enabled(False)
        self.model = cls(
            width=self.width,
            height=self.height,
            fps=float(load["fps"]),
            device=self.device,
            config=load.get("config") or {},
            package=package,
        )
        print(f"loaded {class_name} on {self.device} in {time.perf_counter() - started:.2f} s", flush=True)

    def check_memory(self, vram_gb):
        """A model that needs more GPU memory than the device has free is refused before it
        loads: a clear refusal now instead of an out-of-memory error on air."""
        if vram_gb <= 0 or not self.device.startswith("cuda"):
            return
        import torch

        index = int(self.device.partition(":")[2] or 0)
        free, total = torch.cuda.mem_get_info(index)
        if vram_gb * 1e9 > free:
            raise Refused(
                f"needs {vram_gb:g} GB of GPU memory (vram_gb); {self.device} has "
                f"{free / 1e9:.1f} GB free of {total / 1e9:.1f} GB"
            )

    # -- requests ----------------------------------------------------------------------

    def handle(self, m):
        """Answers a request (any but `load` and `quit`): `done` with what it gives, or
        `error` with the model's exception (or the contract it broke)."""
        op = m.get("op")
        handler = {
            "reset": self.reset,
            "set_prompt": self.set_prompt,
            "step": self.step,
            "save_state": self.save_state,
            "load_state": self.load_state,
        }.get(op)
        reply = {"op": "done", "id": m.get("id")}
        try:
            if handler is None:
                raise Refused(f"unknown request {op!r}")
            reply.update(handler(m))
        except Refused as e:
            reply = {"op": "error", "id": m.get("id"), "stage": op, "message": str(e)}
        except Exception as e:
            reply = {"op": "error", "id": m.get("id"), "stage": op, "message": error_text(e), "traceback": traceback.format_exc()}
        return reply

    def reset(self, m):
        image = None
        if m.get("image"):
            i = m["image"]
            n = i["height"] * i["width"] * 3
            image = np.frombuffer(self.shm, np.uint8, n, i["offset"]).reshape(i["height"], i["width"], 3).copy()
        self.model.reset(int(m["seed"]), m["prompt"], image)
        return {}

    def set_prompt(self, m):
        self.model.set_prompt(m["text"], float(m["transition_s"]))
        return {}

    def step(self, m):
        frames = int(m["frames"])
        inputs = {"frames": frames}
        for name, value in m["inputs"].items():
            if name in ("prompt", "prompt_previous"):
                inputs[name] = value
            elif name == "frame":
                inputs[name] = np.asarray(value, np.int64)
            elif name == "time_s":
                inputs[name] = np.asarray(value, np.float64)
            else:
                inputs[name] = np.asarray(value, np.float32)
        for name, shape in (("camera_pose", (4, 4)), ("intrinsics", (3, 3))):
            if name in inputs:
                inputs[name] = inputs[name].reshape(frames, *shape)
        if m.get("video"):
            # The step's input video, oldest first: a copy, so a model may keep frames
            # across steps while the next step's are written.
            v = m["video"]
            shape = (int(v["frames"]), int(v["height"]), int(v["width"]), 3)
            count = shape[0] * shape[1] * shape[2] * 3
            inputs["video"] = np.frombuffer(self.shm, np.uint8, count, int(v["offset"])).reshape(shape).copy()
        if m.get("audio"):
            # The program's sound for the step's span, float32 [samples, channels].
            a = m["audio"]
            shape = (int(a["samples"]), int(a["channels"]))
            inputs["audio"] = np.frombuffer(self.shm, np.float32, shape[0] * shape[1], int(a["offset"])).reshape(shape).copy()
        saved = self.model.save_state() if self.rollback == "copy" else None
        started = time.perf_counter()
        try:
            out = self.model.step(inputs)
            step_ms = (time.perf_counter() - started) * 1e3
            started = time.perf_counter()
            depth = self.write(out, frames, m["out"])
        except Exception:
            if saved is not None:
                # The state before the failed step, so that the next one starts from it.
                self.model.load_state(self.loadable(saved))
            raise
        write_ms = (time.perf_counter() - started) * 1e3
        return {"frames": frames, "depth": depth, "step_ms": step_ms, "write_ms": write_ms}

    def save_state(self, m):
        state = self.model.save_state()
        n = write_safetensors(m["path"], state, self.state_limit)
        return {"bytes": n}

    def load_state(self, m):
        self.model.load_state(read_safetensors(m["path"]))
        return {}

    # -- output ------------------------------------------------------------------------

    def write(self, out, frames, where):
        """Checks the step's output and writes it into shared memory as RGB (and depth)."""
        if not isinstance(out, dict) or "rgb" not in out:
            raise Refused(f"step() must return a dict with 'rgb', got {describe(out)}")
        rgb = out["rgb"]
        h, w = self.height, self.width
        expected = f"uint8 [{frames}, {h}, {w}, 3] or float [{frames}, 3, {h}, {w}]"
        shape = tuple(getattr(rgb, "shape", ()))
        dtype = str(getattr(rgb, "dtype", "")).replace("torch.", "")
        is_u8 = dtype == "uint8" and shape == (frames, h, w, 3)
        is_float = dtype in ("float32", "float16", "bfloat16", "float64") and shape == (frames, 3, h, w)
        if not (is_u8 or is_float):
            raise Refused(f"step() rgb must be {expected}, got {describe(rgb)}")
        # RGB into shared memory, one frame at a time through one scratch frame (a whole
        # chunk of float temporaries costs more than the conversion); cuecast adds the
        # fourth byte as it copies the frame out.
        n = frames * h * w * 3
        if is_torch(rgb):
            import torch

            dst = torch.frombuffer(self.shm, dtype=torch.uint8, count=n, offset=where["rgb"]).view(frames, h, w, 3)
            if is_float:
                if not bool(torch.isfinite(torch.sum(rgb, dtype=torch.float32))):
                    raise Refused("step() rgb has NaN or infinite values")
                if rgb.device.type == "cpu":
                    tmp = torch.empty((3, h, w), dtype=torch.float32)
                    for i in range(frames):
                        torch.mul(rgb[i], 255, out=tmp)
                        tmp.add_(0.5).clamp_(0, 255)
                        dst[i].copy_(tmp.permute(1, 2, 0))
                else:
                    # On the device: 8 bits and HWC there, then one copy to the host.
                    for i in range(frames):
                        y = rgb[i].float().mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
                        dst[i].copy_(y.permute(1, 2, 0).contiguous())
            else:
                dst.copy_(rgb)
        else:
            rgb = np.asarray(rgb)
            dst = np.ndarray((frames, h, w, 3), np.uint8, self.shm, where["rgb"])
            if is_float:
                if not np.isfinite(rgb.sum(dtype=np.float64)):
                    raise Refused("step() rgb has NaN or infinite values")
                tmp = np.empty((3, h, w), np.float32)
                for i in range(frames):
                    np.multiply(rgb[i], 255, out=tmp, casting="unsafe")
                    tmp += 0.5
                    np.clip(tmp, 0, 255, out=tmp)
                    dst[i] = tmp.transpose(1, 2, 0)
            else:
                np.copyto(dst, rgb)
        if where.get("audio"):
            self.write_audio(out.get("audio"), where["audio"])
        depth = out.get("depth")
        if depth is None or where.get("depth") is None:
            return False
        if tuple(getattr(depth, "shape", ())) != (frames, h, w):
            raise Refused(f"step() depth must be float [{frames}, {h}, {w}] in metres, got {describe(depth)}")
        if is_torch(depth):
            depth = depth.detach().float().cpu().numpy()
        depth = np.asarray(depth, np.float32)
        if not np.isfinite(depth).all():
            raise Refused("step() depth has NaN or infinite values")
        np.ndarray((frames, h, w), np.float32, self.shm, where["depth"])[...] = depth
        return True

    def write_audio(self, audio, where):
        """The step's sound (the manifest's audio.out), float [samples, channels] in
        [-1, 1], into shared memory."""
        shape = (int(where["samples"]), int(where["channels"]))
        expected = f"float [{shape[0]}, {shape[1]}] in [-1, 1] at {where['rate']} Hz"
        if audio is None:
            raise Refused(f"step() must return 'audio' ({expected}): the manifest says the model makes sound")
        if is_torch(audio):
            audio = audio.detach().float().cpu().numpy()
        audio = np.asarray(audio)
        if audio.shape != shape or audio.dtype.kind != "f":
            raise Refused(f"step() audio must be {expected}, got {describe(audio)}")
        if not np.isfinite(audio).all():
            raise Refused("step() audio has NaN or infinite values")
        dst = np.ndarray(shape, np.float32, self.shm, int(where["offset"]))
        np.clip(audio, -1.0, 1.0, out=dst, casting="unsafe")

    def loadable(self, state):
        """A state save_state gave, as load_state receives it after a file (numpy arrays)."""
        return {k: to_numpy(v) for k, v in state.items()}


# -- state files: safetensors, written and read with numpy alone ------------------------

DTYPES = {
    "float32": "F32", "float64": "F64", "float16": "F16", "int64": "I64", "int32": "I32",
    "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}


def to_numpy(v):
    if is_torch(v):
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":
            v = v.float()
        v = v.numpy()
    return np.ascontiguousarray(np.asarray(v))


def write_safetensors(path, state, limit):
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise Refused(f"save_state() must return a dict of named arrays, got {describe(state)}")
    arrays = {k: to_numpy(v) for k, v in state.items()}
    header, offset = {}, 0
    for name, a in arrays.items():
        if str(a.dtype) not in DTYPES:
            raise Refused(f"save_state() {name!r} is {a.dtype}, which a state file cannot hold")
        header[name] = {"dtype": DTYPES[str(a.dtype)], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    if offset > limit:
        raise Refused(
            f"save_state() gave {offset / 1e6:.1f} MB; a compact state is at most {limit / 1e6:.0f} MB "
            "(keep what the model needs to re-create its caches, not the caches)"
        )
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for a in arrays.values():
            f.write(a.tobytes())
    os.replace(tmp, path)
    return offset


def read_safetensors(path):
    names = {v: k for k, v in DTYPES.items()}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    state = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        start, end = t["data_offsets"]
        a = np.frombuffer(data, np.dtype(names[t["dtype"]]), (end - start) // np.dtype(names[t["dtype"]]).itemsize, 8 + n + start)
        state[name] = a.reshape(t["shape"]).copy()
    return state


# -- the loop ---------------------------------------------------------------------------


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--socket", required=True)
    socket_path = args.parse_args().socket
    channel = Channel(socket_path)
    channel.send({"op": "hello", "protocol": PROTOCOL, "pid": os.getpid(), "python": sys.version.split()[0]})
    threading.Thread(target=heartbeat, args=(channel,), daemon=True, name="cuecast-heartbeat").start()
    load = channel.recv()
    try:
        worker = Worker(channel, load)
    except Refused as e:
        channel.send({"op": "error", "stage": "load", "message": str(e)})
        return 2
    except Exception as e:
        channel.send({"op": "error", "stage": "load", "message": error_text(e), "traceback": traceback.format_exc()})
        return 2
    torch = sys.modules.get("torch")
    channel.send({"op": "loaded", "torch": getattr(torch, "__version__", None)})
    while True:
        m = channel.recv()
        if m.get("op") == "quit":
            return 0
        channel.send(worker.handle(m))


if __name__ == "__main__":
    sys.exit(main())
