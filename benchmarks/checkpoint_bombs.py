"""Zip bombs against checkpoint reading: time and peak memory to refuse each, in a fresh process.

    python benchmarks/checkpoint_bombs.py [--out runs/benchmarks/checkpoint_bombs.jsonl]

Each bomb is a few MB that inflates to 3 GiB of zeros; checksums (zip CRC, the manifest's
SHA-256, the file digest) are forged to match what its headers declare:

- ``json-honest``: ``model.json`` declares its true 3 GiB;
- ``json-lying``: ``model.json`` declares 1 MiB (the header lies; the CRC and SHA-256 match that
  first MiB);
- ``tensor-honest``: ``policy.pt`` deflated, declaring its true 3 GiB;
- ``tensor-lying``: ``policy.pt`` deflated, declaring 900 MiB, its SHA-256 forged for 900 MiB of
  zeros (within the 1 GiB reading cap: the case a size check alone would let through);
- ``json-many``: 64 JSON members of 1 MiB each that inflate from a few kB.

Each case runs ``DistributionalPPO.load`` in its own Python process, which reports the wall
time of the refusal and its peak resident memory (``ru_maxrss``) minus the resident memory
just before the call. One JSON line per case (appended to ``--out``), and a table.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

MIB = 1 << 20


def zeros_deflate(n_mib: int) -> bytes:
    """A raw deflate stream of ``n_mib`` MiB of zeros, in O(1) compression work: after a sync
    flush every further MiB of zeros compresses to the same bytes."""
    chunk = b"\0" * MIB
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(chunk) + comp.flush(zlib.Z_SYNC_FLUSH)
    second = comp.compress(chunk) + comp.flush(zlib.Z_SYNC_FLUSH)
    third = comp.compress(chunk) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert second == third
    return first + second * (n_mib - 1) + comp.flush()


def _zeros_digests(n_mib: int) -> tuple[int, str]:
    """(CRC-32, SHA-256) of ``n_mib`` MiB of zeros."""
    chunk = b"\0" * MIB
    crc, sha = 0, hashlib.sha256()
    for _ in range(n_mib):
        crc = zlib.crc32(chunk, crc)
        sha.update(chunk)
    return crc, sha.hexdigest()


def zip_bomb(members: dict[str, tuple[int, int]], format_version: int = 1) -> bytes:
    """A checkpoint-shaped zip: ``{name: (declared MiB, inflated MiB)}``, each member a deflated
    stream of zeros; manifest, zip headers, CRC, SHA-256 and the lifelong file digest all forged
    to match the *declared* sizes (the SHA-256 only up to 64 MiB declared: beyond, the declared
    size alone must refuse it)."""
    from lifelong.checkpoint import archive

    entries = []
    manifest_members = {}
    for name, (declared, inflated) in members.items():
        crc, sha = _zeros_digests(declared) if declared <= 1024 else (0, "0" * 64)
        kind = archive.KIND_BY_SUFFIX[Path(name).suffix]
        manifest_members[name] = {"kind": kind, "size": declared * MIB, "sha256": sha}
        entries.append((name, zeros_deflate(inflated), 8, crc, declared * MIB))
    manifest = json.dumps({"format": archive.FORMAT_NAME, "format_version": format_version,
                           "members": manifest_members}).encode()
    entries.insert(0, (archive.MANIFEST_NAME, manifest, 0, zlib.crc32(manifest), len(manifest)))
    out = io.BytesIO()
    directory = []
    for name, data, method, crc, size in entries:
        offset = out.tell()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size,
                              len(name), 0) + name.encode() + data)
        directory.append((name, method, crc, len(data), size, offset))
    start = out.tell()
    for name, method, crc, csize, size, offset in directory:
        out.write(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, csize, size,
                              len(name), 0, 0, 0, 0, 0, offset) + name.encode())
    body = out.getvalue() + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(directory), len(directory),
                                        out.tell() - start, start, 80)
    return body + b"lifelong-sha256:" + hashlib.sha256(body).hexdigest().encode()


CASES = {
    "json-honest": {"model.json": (3072, 3072)},
    "json-lying": {"model.json": (1, 3072)},
    "tensor-honest": {"policy.pt": (3072, 3072)},
    "tensor-lying": {"policy.pt": (900, 3072)},
    "json-many": {f"m{i}.json": (1, 1) for i in range(64)},
}

_CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(1)
from lifelong import CheckpointError, DistributionalPPO
rss = lambda: int(open('/proc/self/statm').read().split()[1]) * 4096
before = rss()
t0 = time.perf_counter()
try:
    DistributionalPPO.load(sys.argv[1])
    outcome = 'loaded'
except CheckpointError as exc:
    outcome = 'CheckpointError: ' + str(exc).split(': ', 1)[1][:120]
except BaseException as exc:
    outcome = f'{type(exc).__name__}: {exc}'[:160]
elapsed = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({'seconds': elapsed, 'extra_peak_mib': max(0, peak - before) / 2**20, 'outcome': outcome}))
"""


def measure(name: str, data: bytes) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.zip"
        path.write_bytes(data)
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True,
                              timeout=600)
    if proc.returncode != 0:
        return {"case": name, "file_mib": len(data) / MIB, "outcome": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
    return {"case": name, "file_mib": round(len(data) / MIB, 2), **json.loads(proc.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/checkpoint_bombs.jsonl"))
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.cases:
        row = measure(name, zip_bomb(CASES[name]))
        rows.append(row)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name:14s} file {row['file_mib']:6.2f} MiB  refused in {row.get('seconds', float('nan')):6.3f} s  "
              f"extra peak memory {row.get('extra_peak_mib', float('nan')):7.1f} MiB  {row['outcome']}", flush=True)
    return rows


if __name__ == "__main__":
    main()
