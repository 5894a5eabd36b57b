#!/usr/bin/env python3
"""Drops the component-type sections of the `wasi` crate from a core module.

spin-sdk depends on the `wasi` crate (0.13), whose wit-bindgen bindings
embed three encoded worlds (wasi:cli command, wasi:http proxy, and its
own bindings): about 33 KiB of custom sections. The types they describe
are also in spin-sdk's own `spin:up` platform world, which stays, so the
module componentizes the same without them (the end-to-end suite runs the
result under the test host and the real Spin). Every other section is
copied byte for byte.

Usage: strip-wasi-worlds.py IN OUT
"""
import sys

MARKER = "rust-wasi-from-crates-io"


def leb128(data, at):
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def main(source, target):
    data = open(source, "rb").read()
    if data[:4] != b"\0asm":
        sys.exit(f"{source}: not a wasm module")
    out = bytearray(data[:8])
    at = 8
    while at < len(data):
        section_id = data[at]
        size, body = leb128(data, at + 1)
        end = body + size
        if section_id == 0:
            name_len, name_at = leb128(data, body)
            name = data[name_at:name_at + name_len].decode("utf-8", "replace")
            if name.startswith("component-type:") and MARKER in name:
                at = end
                continue
        out += data[at:end]
        at = end
    open(target, "wb").write(out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
