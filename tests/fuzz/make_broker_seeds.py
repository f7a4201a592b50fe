#!/usr/bin/env python3
"""Writes the ZMTP seeds of fuzz_broker (tests/fuzz/broker-corpus): byte
streams one peer could send, each prefixed with 0xFE (the target's stream
mode).  Run from the source root; the output is committed."""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/broker-corpus"


def greeting():
    return b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL" + b"\0" * 16 + b"\0" + b"\0" * 31


def frame(data, more=False, command=False, long=False):
    flags = (1 if more else 0) | (4 if command else 0)
    if long or len(data) > 255:
        return bytes([flags | 2]) + struct.pack(">Q", len(data)) + data
    return bytes([flags, len(data)]) + data


def ready(socket_type):
    props = bytes([11]) + b"Socket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    return frame(bytes([5]) + b"READY" + props, command=True)


def request(json):
    return frame(b"", more=True) + frame(json)


DEALER = greeting() + ready(b"DEALER")
REG = b'{"type":"REG","channel":"cam0","shm_name":"/cam0","client_id":"1-a","pid":1,"id":1}'
SEEDS = {
    "zmtp-list.bin": DEALER + request(b'{"type":"LIST","id":1}'),
    "zmtp-reg-disc-dereg.bin": DEALER + request(REG)
    + request(b'{"type":"DISC","channel":"cam0","client_id":"2-b"}')
    + request(b'{"type":"HB","channel":"cam0","client_id":"2-b","role":"consumer"}')
    + request(b'{"type":"DEREG","channel":"cam0","client_id":"1-a"}'),
    "zmtp-bare-request.bin": DEALER + frame(b'{"type":"LIST"}'),
    "zmtp-duplicate-keys.bin": DEALER + request(b'{"type":"LIST","type":"REG"}'),
    "zmtp-multi-frame.bin": DEALER + frame(b"", more=True) + frame(b'{"type":"LIST"}', more=True)
    + frame(b"x", more=True) + frame(b"y"),
    "zmtp-endless-more.bin": DEALER + b"".join(frame(b"z" * 200, more=True) for _ in range(40)),
    "zmtp-long-frame.bin": DEALER + b"\x03" + struct.pack(">Q", 1 << 40) + b"zz",
    "zmtp-long-small-frame.bin": DEALER + frame(b"", more=True)
    + frame(b'{"type":"LIST"}', long=True),
    "zmtp-command-in-message.bin": DEALER + frame(b"", more=True) + ready(b"DEALER"),
    "zmtp-wrong-type.bin": greeting() + ready(b"PUSH") + request(b'{"type":"LIST"}'),
    "zmtp-zmtp1.bin": b"\x01\x00" + b"{}",
    "zmtp-sub.bin": greeting() + ready(b"SUB") + frame(b"\x01cam0") + frame(b"\x01")
    + frame(b"\x00cam0") + frame(bytes([9]) + b"SUBSCRIBE" + b"cam1", command=True),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(b"\xfe" + data)
