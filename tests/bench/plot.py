#!/usr/bin/env python3
"""Plots datahub-gst-bench's CSV with gnuplot (Debian: gnuplot-nox).

    tests/bench/plot.py BENCH.csv OUTDIR

Writes throughput.png, ratio.png, latency.png and cpu.png to OUTDIR."""
import csv
import os
import subprocess
import sys
import tempfile

rows = list(csv.DictReader(open(sys.argv[1])))
out = sys.argv[2]
os.makedirs(out, exist_ok=True)


def key(r):
    return f"{r['case']} x{r['consumers']}"


cases = []
by = {}
for r in rows:
    k = key(r)
    if k not in cases:
        cases.append(k)
    by[(k, r["transport"])] = r


def value(k, transport, field):
    r = by.get((k, transport))
    return float(r[field]) if r and float(r[field]) > 0 else float("nan")


def write_dat(name, columns, selected):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        for k in selected:
            vals = " ".join(f"{value(k, t, fld):.3f}" for t, fld in columns)
            f.write(f'"{k}" {vals}\n')
    return path


tmp = tempfile.mkdtemp()
flat = [k for k in cases if "flat" in k or "videotestsrc" in k or "plain" in k]
timed = [k for k in cases if "kHz" in k or "fps" in k]
tput = write_dat("tput.dat", [("datahub", "rate"), ("shm", "rate"), ("in-process", "rate")], flat)
ratio_path = os.path.join(tmp, "ratio.dat")
with open(ratio_path, "w") as f:
    for k in flat:
        f.write(f'"{k}" {value(k, "datahub", "rate") / value(k, "shm", "rate"):.3f}\n')
lat = write_dat("lat.dat", [("datahub", "p50_us"), ("datahub", "p99_us"), ("shm", "p50_us"),
                            ("shm", "p99_us"), ("in-process", "p50_us"), ("in-process", "p99_us")], timed)
cpu_path = os.path.join(tmp, "cpu.dat")
with open(cpu_path, "w") as f:
    for k in flat:
        d = value(k, "datahub", "producer_cpu_ns") + value(k, "datahub", "consumer_cpu_ns")
        s = value(k, "shm", "producer_cpu_ns") + value(k, "shm", "consumer_cpu_ns")
        f.write(f'"{k}" {d / 1000:.3f} {s / 1000:.3f}\n')

common = """
set terminal pngcairo size 1400,700 font ",10"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -35 scale 0
set grid ytics
set key top right
"""
latency_plot = f"""
set output "{out}/latency.png"
set title "Latency at a fixed rate (commit to consumer), lower is better"
set logscale y
set ylabel "microseconds"
set xtics norotate
plot "{lat}" using 2:xtic(1) title "datahub p50", "" using 3 title "datahub p99", "" using 4 title "shm p50", "" using 5 title "shm p99", "" using 6 title "in-process p50", "" using 7 title "in-process p99"
set xtics rotate by -35
unset logscale y
""" if timed else ""
script = common + f"""
set output "{out}/throughput.png"
set title "Buffers per second (slowest consumer), higher is better"
set logscale y
set ylabel "buffers/s"
plot "{tput}" using 2:xtic(1) title "datahub", "" using 3 title "shmsink/shmsrc", "" using 4 title "in-process ceiling"
unset logscale y
set output "{out}/ratio.png"
set title "datahub / shmsink buffers per second (same run)"
set ylabel "ratio"
set yrange [0:*]
plot "{ratio_path}" using 2:xtic(1) title "datahub / shm", 1 with lines lw 2 title "parity", 5 with lines dt 2 lw 2 title "5x"
set autoscale y
{latency_plot}
set logscale y
set output "{out}/cpu.png"
set title "CPU time per buffer, producer + one consumer, lower is better"
set ylabel "microseconds per buffer"
plot "{cpu_path}" using 2:xtic(1) title "datahub", "" using 3 title "shmsink/shmsrc"
"""
subprocess.run(["gnuplot"], input=script.encode(), check=True)
print(f"plots written to {out}/")
