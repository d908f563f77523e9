"""Plots of a benchmark run: reads docs/benchmarks.json, writes one PNG per row.

    python plot.py BENCHMARKS.json OUT_DIR

Every figure carries the machine and the date of the run it shows.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure(report, title, size=(8, 4.5)):
    fig, ax = plt.subplots(figsize=size)
    fig.suptitle(title, fontsize=12)
    fig.text(0.99, 0.01, f"{report['machine']} · {report['date']}", ha="right", va="bottom",
             fontsize=7, color="#555")
    return fig, ax


def cdf(ax, samples, label):
    xs = sorted(samples)
    ax.plot(xs, [i / max(1, len(xs) - 1) for i in range(len(xs))], label=label)


def save(fig, out, name):
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(os.path.join(out, name), dpi=110)
    plt.close(fig)


def source(r, out):
    rows = r["source"]
    names = ["null", "tensor-out", "pattern", "procedural", "videotestsrc"]
    fig, ax = figure(r, "1. Source cost, not live into fakesink (frames/s, log scale)")
    width = 0.16
    for i, name in enumerate(names):
        xs = [j + (i - 2) * width for j in range(len(rows))]
        ax.bar(xs, [1e3 / row[name]["ms"] for row in rows], width, label=name)
    ax.set_xticks(range(len(rows)), [f"{row['width']}x{row['height']}" for row in rows])
    ax.set_yscale("log")
    ax.set_ylabel("frames per second")
    ax.legend(fontsize=8)
    save(fig, out, "source.png")


def stepping(r, out):
    s = r["stepping"]
    fig, ax = figure(r, f"2. Stepping {s['model']} ({s['width']}x{s['height']}) on the CPU: ms per step")
    labels = ["cuecast\nstep + frame", "Python loop\nstep + frame", "Python loop\nstep alone"]
    values = [s["cuecast_ms"], s["python_frame_ms"], s["python_step_ms"]]
    runs = [s["cuecast_runs"], s["python_frame_runs"], s["python_step_runs"]]
    ax.bar(labels, values, color=["#3d8bfd", "#e0a526", "#c9b27a"])
    for i, rs in enumerate(runs):
        ax.plot([i] * len(rs), rs, "k.", markersize=4)
    ax.set_ylabel("ms per step (bars: median; dots: rounds)")
    save(fig, out, "stepping.png")


def pacing(r, out):
    fig, ax = figure(r, "3. Pacing, live 640x360: push time after each slot starts")
    for p in r["pacing"]:
        cdf(ax, p["run"]["push_ms"], f"{p['fps']} fps ({p['run']['repeated']} repeated of {p['run']['frames']})")
    ax.set_xlabel("ms after the slot started")
    ax.set_ylabel("fraction of frames")
    ax.legend(fontsize=8)
    save(fig, out, "pacing.png")


def latency(r, out):
    lat = r["latency"]
    fig, ax = figure(r, "4. Cue latency (cumulative)")
    for label, samples in [
        ("HTTP accepted → frame", lat["http"]["samples"]),
        ("cue → SRT receiver", lat["srt"]["samples"]),
        ("cue → control surface preview", lat["preview"]["visible_samples"]),
    ]:
        cdf(ax, samples, label)
    ax.set_xlabel("ms")
    ax.set_ylabel("fraction of cues")
    ax.legend(fontsize=8)
    save(fig, out, "latency.png")


def resources(r, out):
    x = r["resources"]
    t = [s[0] / 60 for s in x["samples"]]
    fig, ax = figure(r, f"5. Resources over {x['seconds'] // 60} minutes: SRT + RTMP + recording")
    ax.plot(t, [s[1] for s in x["samples"]], color="#3d8bfd", label="RSS (MB)")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)", color="#3d8bfd")
    ax.axvline(x["warmup_s"] / 60, color="#999", linestyle=":", label="end of warm-up")
    ax2 = ax.twinx()
    ax2.plot(t, [s[2] for s in x["samples"]], color="#e5484d", alpha=0.6, label="CPU (% of a core)")
    ax2.set_ylabel("CPU (% of one core)", color="#e5484d")
    ax.legend(loc="lower left", fontsize=8)
    save(fig, out, "resources.png")


def encode(r, out):
    rows = r["encode"]
    fig, ax = figure(r, "6. x264 at 30 fps: CPU and dropped frames")
    labels = [f"{e['width']}x{e['height']}" for e in rows]
    bars = ax.bar(labels, [e["cpu_percent"] for e in rows], color="#3d8bfd")
    for b, e in zip(bars, rows):
        ax.annotate(f"{e['dropped']} dropped of {e['frames_in']}", (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("CPU (% of one core)")
    save(fig, out, "encode.png")


def main():
    report_path, out = sys.argv[1], sys.argv[2]
    with open(report_path) as f:
        report = json.load(f)
    os.makedirs(out, exist_ok=True)
    for plot in (source, stepping, pacing, latency, resources, encode):
        plot(report, out)


if __name__ == "__main__":
    main()
