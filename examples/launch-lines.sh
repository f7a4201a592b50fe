#!/bin/sh
# The two gst-launch-1.0 lines: run the producer in one terminal and the
# consumer in another (any order: the consumer waits for the producer).
# From a build tree:  export GST_PLUGIN_PATH_1_0=$PWD/build/gst
case "${1:-}" in
  producer)
    exec gst-launch-1.0 videotestsrc is-live=true ! \
      video/x-raw,format=I420,width=1280,height=720,framerate=30/1 ! \
      datahubsink channel=cam0 ;;
  consumer)
    exec gst-launch-1.0 datahubsrc channel=cam0 ! videoconvert ! autovideosink ;;
  *)
    echo "usage: $0 producer|consumer" >&2
    exit 2 ;;
esac
