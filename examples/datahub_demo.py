#!/usr/bin/env python3
"""Video through datahub between two processes, with live figures.

    datahub_demo.py produce CHANNEL            # videotestsrc -> datahubsink
    datahub_demo.py consume CHANNEL SECONDS PNG  # datahubsrc -> appsink (+ a PNG)

The producer prints what datahubsink reports once a second (frames written,
bytes it had to copy: 0 when videotestsrc renders straight into the offered
slot pool).  The consumer prints frames per second, transport latency and
the src's figures, saves the first frame it receives as a PNG, and exits
after SECONDS.  It also reads the application metadata the producer sets
(the frame count, once a second) and prints it when it changes.

Needs the datahub plugin on GST_PLUGIN_PATH (scripts/demo sets it up).
"""
import signal
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 60
CAPS = f"video/x-raw,format=RGBA,width={WIDTH},height={HEIGHT},framerate={FPS}/1"


def produce(channel):
    pipeline = Gst.parse_launch(
        f"videotestsrc is-live=true pattern=ball ! {CAPS} ! "
        f"datahubsink name=sink channel={channel} stats-interval=1000"
    )
    sink = pipeline.get_by_name("sink")
    loop = GLib.MainLoop()
    last = {"written": 0}

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"producer: error: {err.message} ({dbg})", flush=True)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()
        elif msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "datahub-stats":
                written = s.get_value("written")
                print(
                    f"producer: {written - last['written']:5d} records/s written, "
                    f"consumers {s.get_value('consumers')}, "
                    f"bytes copied {s.get_value('bytes-copied')}",
                    flush=True,
                )
                last["written"] = written
                md = Gst.Structure.new_from_string(f"demo, written=(guint64){written}")
                sink.set_property("metadata", md)
            elif s.get_name() == "datahub-consumer":
                print(f"producer: consumer {s.get_value('event')}", flush=True)
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    def stop(*_):
        pipeline.send_event(Gst.Event.new_eos())
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, stop)
    pipeline.set_state(Gst.State.PLAYING)
    print(f"producer: {CAPS} on channel '{channel}'", flush=True)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    print("producer: stopped", flush=True)
    return 0


def save_png(sample, path):
    png = GstVideo.video_convert_sample(sample, Gst.Caps.from_string("image/png"),
                                        5 * Gst.SECOND)
    buf = png.get_buffer()
    ok, info = buf.map(Gst.MapFlags.READ)
    with open(path, "wb") as f:
        f.write(bytes(info.data))
    buf.unmap(info)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


def consume(channel, seconds, png):
    pipeline = Gst.parse_launch(
        f"datahubsrc name=src channel={channel} is-live=true timestamp-mode=clock "
        f"stats-interval=1000 timeout=10000 ! "
        f"appsink name=out emit-signals=true sync=false max-buffers=4 drop=true"
    )
    out = pipeline.get_by_name("out")
    src = pipeline.get_by_name("src")
    loop = GLib.MainLoop()
    state = {"frames": 0, "lat": [], "total": 0, "caps": None, "meta": None}

    def on_sample(sink):
        sample = sink.emit("pull-sample")
        buf = sample.get_buffer()
        clock = pipeline.get_clock()
        if clock and buf.pts != Gst.CLOCK_TIME_NONE:
            # clock mode: pts + base time is the frame's time on the shared
            # monotonic clock of the producer (when videotestsrc made it)
            now = clock.get_time()
            due = buf.pts + pipeline.get_base_time()
            state["lat"].append((now - due) / 1000.0)
        state["frames"] += 1
        state["total"] += 1
        if state["caps"] is None:
            state["caps"] = sample.get_caps().to_string()
            print(f"consumer: caps {state['caps']}", flush=True)
            save_png(sample, png)
        return Gst.FlowReturn.OK

    out.connect("new-sample", on_sample)

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            print(f"consumer: error: {err.message} ({dbg})", flush=True)
            loop.quit()
        elif msg.type == Gst.MessageType.WARNING:
            err, _ = msg.parse_warning()
            print(f"consumer: warning: {err.message}", flush=True)
        elif msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "datahub-stats":
                lat = state["lat"]
                transport = ""
                if s.has_field("latency-p50-us"):
                    transport = (f"commit->received p50 {s.get_value('latency-p50-us'):6.1f} us "
                                 f"p99 {s.get_value('latency-p99-us'):6.1f} us  ")
                print(
                    f"consumer: {state['frames']:3d} fps  {transport}"
                    f"made->received p50 {percentile(lat, 0.5) / 1000:5.2f} ms  "
                    f"bytes copied {s.get_value('bytes-copied')}  "
                    f"lost {s.get_value('consumer-lost')}",
                    flush=True,
                )
                state["frames"] = 0
                state["lat"] = []
            elif s.get_name() == "datahub-metadata":
                md = s.get_value("metadata")
                print(f"consumer: metadata {md.to_string()}", flush=True)
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add(int(seconds * 1000), loop.quit)
    pipeline.set_state(Gst.State.PLAYING)
    loop.run()
    stats = src.get_property("stats")
    pipeline.set_state(Gst.State.NULL)
    print(
        f"consumer: {state['total']} frames; src bytes copied "
        f"{stats.get_value('bytes-copied') if stats.has_field('bytes-copied') else 'n/a'}; "
        f"saved a received frame to {png}",
        flush=True,
    )
    return 0 if state["total"] > 0 else 1


def main(argv):
    Gst.init(None)
    if len(argv) >= 3 and argv[1] == "produce":
        return produce(argv[2])
    if len(argv) >= 5 and argv[1] == "consume":
        return consume(argv[2], float(argv[3]), argv[4])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
