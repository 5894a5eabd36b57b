#!/usr/bin/env python3
"""Drops the component-type sections of the `wasi` crate from a core module.

spin-sdk depends on the `wasi` crate (0.13), whose wit-bindgen bindings
embed three encoded worlds (wasi:cli command, wasi:http proxy, and its
own bindings): about 33 KiB of custom sections. The types they describe
are also in spin-sdk's own `spin:up` platform world, which stays, so the
module componentizes the same without them (the end-to-end suite runs the
result under the test host and the real Spin). Every other section is
copied byte for byte.

It refuses (a message on stderr, exit status 1, nothing written) rather
than write something Spin cannot componentize: input that is not a core
wasm module (magic and version 1), a section or name that runs past the
end of the input, and a module importing an interface (other than
`wasi_snapshot_preview1`, which the adapter provides) that no kept
component-type section mentions, which is what would happen were the
worlds this relies on to move into the stripped sections.

Usage: strip-wasi-worlds.py IN OUT
"""
import sys

MARKER = "rust-wasi-from-crates-io"
HEADER = b"\0asm\x01\0\0\0"
CUSTOM, IMPORT = 0, 2
# Provided by the preview-1 adapter when Spin componentizes the module, not
# by a world in the module.
ADAPTER_MODULE = "wasi_snapshot_preview1"
# wit-bindgen's prefix for the core imports of an exported interface's
# resources: the interface is named without it.
EXPORT_PREFIX = "[export]"


class BadInput(Exception):
    pass


class Reader:
    """Reads one byte range of the input, refusing to go past its end."""

    def __init__(self, data, at, end, what):
        if end > len(data):
            raise BadInput(f"{what} ends at byte {end}, beyond the input's {len(data)}")
        self.data, self.at, self.end, self.what = data, at, end, what

    def byte(self):
        if self.at >= self.end:
            raise BadInput(f"{self.what} is truncated at byte {self.at}")
        self.at += 1
        return self.data[self.at - 1]

    def leb128(self):
        value = shift = 0
        while True:
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def bytes(self, length):
        if self.at + length > self.end:
            raise BadInput(
                f"{self.what}: {length} bytes at byte {self.at} run past its end, {self.end}"
            )
        self.at += length
        return self.data[self.at - length:self.at]

    def name(self):
        return self.bytes(self.leb128()).decode("utf-8", "replace")


def import_modules(section):
    """The module names of an import section's entries."""
    modules = set()
    for _ in range(section.leb128()):
        module = section.name()
        section.name()
        kind = section.byte()
        if kind == 0x00:  # function: its type index
            section.leb128()
        elif kind == 0x01:  # table: reference type, limits
            value_type(section)
            limits(section)
        elif kind == 0x02:  # memory: limits
            limits(section)
        elif kind == 0x03:  # global: value type, mutability
            value_type(section)
            section.byte()
        elif kind == 0x04:  # tag: attribute, type index
            section.byte()
            section.leb128()
        else:
            raise BadInput(f"{section.what}: unknown import kind {kind:#04x}")
        modules.add(module)
    return modules


def value_type(section):
    # `(ref null? ht)` carries a heap type; every other type is one byte.
    if section.byte() in (0x63, 0x64):
        section.leb128()


def limits(section):
    flags = section.byte()
    section.leb128()
    if flags & 0x01:
        section.leb128()


def strip(data):
    if data[:8] != HEADER:
        raise BadInput("not a core wasm module (magic and version 1)")
    out = bytearray(data[:8])
    imported = set()
    kept_worlds = []
    at = 8
    while at < len(data):
        header = Reader(data, at, len(data), f"section header at byte {at}")
        section_id = header.byte()
        size = header.leb128()
        section = Reader(data, header.at, header.at + size, f"section {section_id} at byte {at}")
        if section_id == CUSTOM:
            name = section.name()
            if name.startswith("component-type:"):
                if MARKER in name:
                    at = section.end
                    continue
                kept_worlds.append(data[section.at:section.end])
        elif section_id == IMPORT:
            imported |= import_modules(section)
        out += data[at:section.end]
        at = section.end
    interfaces = {
        module[len(EXPORT_PREFIX):] if module.startswith(EXPORT_PREFIX) else module
        for module in imported
        if module != ADAPTER_MODULE
    }
    missing = sorted(i for i in interfaces if not any(i.encode() in w for w in kept_worlds))
    if missing:
        raise BadInput(
            f"no kept component-type section mentions {', '.join(missing)}; "
            f"the module would not componentize without the stripped ones"
        )
    return out


def main(source, target):
    data = open(source, "rb").read()
    try:
        out = strip(data)
    except BadInput as e:
        sys.exit(f"strip-wasi-worlds: {source}: {e}")
    open(target, "wb").write(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: strip-wasi-worlds.py IN OUT")
    main(sys.argv[1], sys.argv[2])
