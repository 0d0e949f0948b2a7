"""The checkpoint file format: a verified zip archive of JSON and tensor members. No pickle.

Layout of a checkpoint file (format ``lifelong-checkpoint``, version :data:`FORMAT_VERSION`)::

    manifest.json      {"format", "format_version", "library_version", "members": {name: {kind, size, sha256}}}
    <name>.json        kind "json":    UTF-8 strict JSON (no NaN/Infinity literals)
    <name>.pt          kind "tensors": torch.save of a tree of tensors / numbers / strings / lists / dicts,
                                       read back only with torch.load(weights_only=True)
    (zip comment)      "lifelong-sha256:" + sha256 of every byte of the file before the comment

Reading refuses anything that does not fit: a member that is not in the manifest, a kind that
is not allowed, a name that is not a plain file name, a size or checksum that differs, a JSON
member that is not JSON, a tensor member the safe unpickler rejects, a whole-file digest that
differs (so a flipped bit anywhere, zip headers included, is caught), a newer format version.
Every refusal is a :class:`lifelong.CheckpointError` naming the path and the fault.

The in-memory form of an archive (what :func:`pack` takes and :func:`unpack` returns) is a
``dict`` mapping member names to their decoded content: a JSON value for ``*.json`` members, a
tensor tree for ``*.pt`` members.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pathlib
import re
import zipfile
from typing import Any

import numpy as np
import torch

from lifelong import __version__
from lifelong.checkpoint.atomic import write_atomic
from lifelong.errors import CheckpointError, CheckpointUnsupportedError

FORMAT_NAME = "lifelong-checkpoint"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
KIND_BY_SUFFIX = {".json": "json", ".pt": "tensors"}
ALLOWED_KINDS = frozenset(KIND_BY_SUFFIX.values())
_COMMENT_PREFIX = b"lifelong-sha256:"
_COMMENT_LEN = len(_COMMENT_PREFIX) + 64
_MAX_MANIFEST_BYTES = 1 << 20
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# Marker for numpy arrays inside tensor trees (torch's safe unpickler does not accept ndarrays).
NDARRAY_TAG = "__lifelong_ndarray__"


def _library_version() -> str:
    return __version__


# --------------------------------------------------------------------------- encoding


def encode_tensor_tree(value: Any, where: str = "") -> Any:
    """Return ``value`` as a tree the safe loader accepts: CPU tensor clones, numbers, strings,
    ``None``, lists, tuples and dicts with str/int keys; numpy arrays become tagged tensors and
    numpy scalars Python numbers. Anything else is a ``ValueError`` naming where it is.

    Tensors are detached, moved to the CPU and cloned, so the result never aliases live state.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True).contiguous()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind not in "biuf":
            raise ValueError(f"cannot store {where or 'value'}: numpy array of dtype {value.dtype} is not numeric")
        return {NDARRAY_TAG: torch.from_numpy(np.array(value, copy=True, order="C")), "dtype": value.dtype.str}
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, np.integer):
                key = int(key)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ValueError(f"cannot store {where or 'value'}: dict key {key!r} is not a str or int")
            out[key] = encode_tensor_tree(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list):
        return [encode_tensor_tree(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return tuple(encode_tensor_tree(item, f"{where}[{i}]") for i, item in enumerate(value))
    raise ValueError(
        f"cannot store {where or 'value'}: {type(value).__module__}.{type(value).__qualname__} is not a tensor, "
        "number, string, list or dict (checkpoints hold data only, never pickled objects)"
    )


def decode_tensor_tree(value: Any) -> Any:
    """Inverse of :func:`encode_tensor_tree`: tagged tensors become numpy arrays again."""
    if isinstance(value, dict):
        if NDARRAY_TAG in value:
            tensor = value[NDARRAY_TAG]
            dtype = np.dtype(value["dtype"])
            if dtype.kind not in "biuf" or dtype.itemsize > 16:
                raise ValueError(f"numpy dtype {dtype.str!r} is not a numeric dtype a checkpoint stores")
            return tensor.numpy().astype(dtype, copy=True)
        return {key: decode_tensor_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_tensor_tree(item) for item in value]
    if isinstance(value, tuple):
        return tuple(decode_tensor_tree(item) for item in value)
    return value


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot store {where}: non-finite float {value!r} in a JSON member")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"cannot store {where}: JSON object key {key!r} is not a string")
            _check_json(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    raise ValueError(f"cannot store {where}: {type(value).__qualname__} is not JSON data")


def _kind_of(name: str) -> str:
    suffix = pathlib.PurePosixPath(name).suffix
    if not _MEMBER_NAME.match(name) or suffix not in KIND_BY_SUFFIX or name == MANIFEST_NAME:
        raise ValueError(
            f"invalid checkpoint member name {name!r}: expected a plain file name ending in .json or .pt "
            f"(and not {MANIFEST_NAME!r})"
        )
    return KIND_BY_SUFFIX[suffix]


def _encode_member(name: str, content: Any) -> bytes:
    kind = _kind_of(name)
    if kind == "json":
        _check_json(content, name)
        return json.dumps(content, allow_nan=False, sort_keys=False, separators=(",", ":")).encode("utf-8")
    buf = io.BytesIO()
    torch.save(encode_tensor_tree(content, name), buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- packing


def pack_bytes(members: dict[str, bytes], manifest: dict | None = None) -> bytes:
    """Assemble already-encoded members into archive bytes (manifest, checksums, file digest).

    ``manifest`` overrides the generated manifest verbatim (tests use this to craft files).
    """
    if manifest is None:
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "library_version": _library_version(),
            "members": {
                name: {"kind": _kind_of(name), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                for name, data in members.items()
            },
        }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_zipinfo(MANIFEST_NAME, zipfile.ZIP_DEFLATED), json.dumps(manifest, indent=1).encode("utf-8"))
        for name, data in members.items():
            method = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
            zf.writestr(_zipinfo(name, method), data)
        zf.comment = b"\0" * _COMMENT_LEN  # placeholder, replaced by the digest below
    raw = bytearray(buf.getvalue())
    digest = hashlib.sha256(bytes(raw[:-_COMMENT_LEN])).hexdigest().encode("ascii")
    raw[-_COMMENT_LEN:] = _COMMENT_PREFIX + digest
    return bytes(raw)


def _zipinfo(name: str, method: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
    info.compress_type = method
    info.external_attr = 0o644 << 16
    return info


def pack(state: dict[str, Any]) -> bytes:
    """Encode an in-memory archive ``{member name: content}`` into checkpoint file bytes."""
    if not isinstance(state, dict) or not state:
        raise ValueError(f"state must be a non-empty dict of checkpoint members, got {type(state).__name__}")
    return pack_bytes({name: _encode_member(name, content) for name, content in state.items()})


def write_archive(path: str | os.PathLike, state: dict[str, Any]) -> pathlib.Path:
    """Encode ``state`` and write it atomically to ``path`` (used as given: no suffix is added)."""
    return write_atomic(path, pack(state))


# --------------------------------------------------------------------------- reading
#
# Bounds. A file from outside is hostile: reading never allocates what a file merely declares.
# - ``max_bytes`` (default :data:`DEFAULT_MAX_BYTES`, 1 GiB; every reader takes it per call): the
#   file itself, and the sum of the uncompressed sizes its zip headers declare, may not exceed
#   it; each member is inflated in chunks and refused as soon as it yields more than its
#   declared size (zip headers can lie), so inflating never produces more than ``max_bytes``.
# - Tensor members must be stored uncompressed (as this module writes them), so they can never
#   inflate beyond the file's own size; JSON members (deflated) may declare at most
#   :data:`MAX_JSON_BYTES` bytes all together, and nest at most :data:`MAX_JSON_DEPTH` levels
#   (checked on the raw bytes before parsing, so a bracket bomb never reaches the parser).
#   Together: refusing any zip bomb inflates at most MAX_JSON_BYTES + the manifest.
# - Tensor members: trees at most :data:`MAX_TREE_DEPTH` deep.

DEFAULT_MAX_BYTES = 1 << 30
MAX_JSON_BYTES = 16 << 20
MAX_JSON_DEPTH = 64
MAX_TREE_DEPTH = 64
_CHUNK = 1 << 20
_ZIP_OVERHEAD = 1 << 20  # headers, central directory and manifest beyond the members


def _fail(path: Any, fault: str) -> CheckpointError:
    return CheckpointError(f"{path}: {fault}")


def _check_max_bytes(max_bytes: Any) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer (bytes), got {max_bytes!r}")
    return max_bytes


def _read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    p = pathlib.Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise _fail(p, "is a directory, not a checkpoint file")
    try:
        size = p.stat().st_size
        if size > max_bytes + _ZIP_OVERHEAD:
            raise _fail(p, f"file is {size:,} bytes, more than the reading cap max_bytes={max_bytes:,} (refused; "
                           "pass a larger max_bytes to load a checkpoint this big)")
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + _ZIP_OVERHEAD + 1)
    except OSError as exc:
        raise _fail(p, f"cannot be read ({exc})") from exc
    if len(data) > max_bytes + _ZIP_OVERHEAD:
        raise _fail(p, f"file grew beyond the reading cap max_bytes={max_bytes:,} while being read (refused)")
    return data


def read_file_object(file: Any, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of an open binary file object from its start (as Stable-Baselines3 reads a zip
    from one), at most ``max_bytes`` plus the zip overhead: a stream that holds more (a pipe,
    ``/dev/zero``, a socket) is refused after that many bytes, never read to its end."""
    max_bytes = _check_max_bytes(max_bytes)
    limit = max_bytes + _ZIP_OVERHEAD
    try:
        if file.seekable():
            file.seek(0)
        data = file.read(limit + 1)
    except OSError as exc:
        raise _fail(name, f"cannot be read ({exc})") from exc
    if not isinstance(data, bytes):
        raise _fail(name, f"is not a binary file object (read() returned {type(data).__name__})")
    if len(data) > limit:
        raise _fail(name, f"holds more than the reading cap max_bytes={max_bytes:,} (refused after "
                          f"{limit + 1:,} bytes; pass a larger max_bytes to load a checkpoint this big)")
    return data


def _open_zip(path: Any, data: bytes) -> zipfile.ZipFile:
    if not data:
        raise _fail(path, "empty file (0 bytes): not a checkpoint (an interrupted copy?)")
    if not data.startswith(b"PK\x03\x04"):
        raise _fail(path, "not a zip archive, so not a lifelong checkpoint (foreign file)")
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # zipfile raises many kinds on damaged headers
        raise _fail(path, f"truncated or corrupted zip archive ({type(exc).__name__}: {exc})") from exc


def _inflate(path: Any, zf: zipfile.ZipFile, name: str, declared: int, sha256: str | None = None) -> bytes:
    """The bytes of member ``name``, inflated in chunks: refused as soon as it yields more than
    ``declared`` bytes, whatever its headers say (the zip-bomb defence), and, given ``sha256``,
    checked against it before the chunks are joined (a corrupted member never costs twice its
    size in memory)."""
    chunks: list[bytes] = []
    total = 0
    digest = hashlib.sha256()
    try:
        with zf.open(name) as stream:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > declared:
                    raise _fail(path, f"member {name!r} inflates beyond its declared {declared:,} bytes (refused)")
                digest.update(chunk)
                chunks.append(chunk)
    except CheckpointError:
        raise
    except Exception as exc:  # bad CRC, bad header, bad compression, unsupported method ...
        raise _fail(path, f"member {name!r} is corrupted ({type(exc).__name__}: {exc})") from exc
    if total != declared:
        raise _fail(path, f"member {name!r} has {total:,} bytes, its header says {declared:,} (corrupted)")
    if sha256 is not None and digest.hexdigest() != sha256:
        raise _fail(path, f"member {name!r} fails its sha256 checksum (corrupted)")
    return b"".join(chunks)


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text ``raw``, brackets inside strings ignored
    (vectorised: strings are blanked with one regular expression, then a cumulative sum)."""
    text = _JSON_STRING.sub(b'""', raw)
    codes = np.frombuffer(text, dtype=np.uint8)
    steps = (np.isin(codes, _OPENERS)).astype(np.int64) - (np.isin(codes, _CLOSERS)).astype(np.int64)
    return int(np.cumsum(steps).max()) if steps.size else 0


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENERS = np.frombuffer(b"[{", dtype=np.uint8)
_CLOSERS = np.frombuffer(b"]}", dtype=np.uint8)


def _parse_json(path: Any, name: str, raw: bytes) -> Any:
    """Strict JSON (no NaN/Infinity), within :data:`MAX_JSON_BYTES` and :data:`MAX_JSON_DEPTH`."""
    if len(raw) > MAX_JSON_BYTES:
        raise _fail(path, f"member {name!r} is {len(raw):,} bytes of JSON, more than {MAX_JSON_BYTES:,} (refused)")
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise _fail(path, f"member {name!r} nests JSON {depth} levels deep, more than {MAX_JSON_DEPTH} (refused)")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(path, f"member {name!r} is not valid JSON ({exc})") from exc


def _read_manifest(path: Any, zf: zipfile.ZipFile) -> dict:
    names = [info.filename for info in zf.infolist()]
    if MANIFEST_NAME not in names:
        hint = ""
        if "data" in names and "policy.pth" in names:
            hint = " (it looks like a Stable-Baselines3 file; load it with stable_baselines3, not lifelong)"
        raise _fail(path, f"not a lifelong checkpoint: the zip has no {MANIFEST_NAME}{hint}")
    if len(names) != len(set(names)):
        raise _fail(path, "corrupted archive: duplicate member names")
    declared = zf.getinfo(MANIFEST_NAME).file_size
    if declared > _MAX_MANIFEST_BYTES:
        raise _fail(path, f"member {MANIFEST_NAME!r} is implausibly large (refused)")
    manifest = _parse_json(path, MANIFEST_NAME, _inflate(path, zf, MANIFEST_NAME, declared))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        fmt = manifest.get("format") if isinstance(manifest, dict) else None
        raise _fail(path, f"not a lifelong checkpoint: manifest format is {fmt!r:.80}, expected {FORMAT_NAME!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(path, f"invalid format_version {version!r:.80} in the manifest")
    if version > FORMAT_VERSION:
        raise CheckpointUnsupportedError(
            f"{path}: "
            f"written by a newer checkpoint format (version {version}, written by lifelong "
            f"{str(manifest.get('library_version', '?'))[:40]}); this lifelong {_library_version()} reads versions "
            f"up to {FORMAT_VERSION}: upgrade lifelong to load it"
        )
    members = manifest.get("members")
    if not isinstance(members, dict) or not members:
        raise _fail(path, "manifest lists no members")
    for name, entry in members.items():
        if not isinstance(entry, dict):
            raise _fail(path, f"manifest entry for {name!r:.140} is not an object")
        try:
            kind = _kind_of(name)
        except ValueError:
            raise _fail(path, f"member {name!r:.140} has a name or kind that is not allowed") from None
        if entry.get("kind") != kind or entry.get("kind") not in ALLOWED_KINDS:
            raise _fail(path, f"member {name!r} has kind {entry.get('kind')!r:.40}; allowed here: {kind!r}")
        size, sha = entry.get("size"), entry.get("sha256")
        if (not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(sha, str)
                or not re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise _fail(path, f"manifest entry for {name!r} has no valid size and sha256")
    for name in names:
        if name != MANIFEST_NAME and name not in members:
            raise _fail(path, f"member {name!r:.140} is not listed in the manifest (refused)")
    for name in members:
        if name not in names:
            raise _fail(path, f"missing member {name!r} (listed in the manifest, absent from the archive)")
    return manifest


def _check_digest(path: Any, data: bytes) -> None:
    comment = data[-_COMMENT_LEN:]
    if not comment.startswith(_COMMENT_PREFIX):
        raise _fail(path, "archive has no lifelong file digest (truncated, or written by another tool)")
    expected = comment[len(_COMMENT_PREFIX):].decode("ascii", "replace")
    actual = hashlib.sha256(data[:-_COMMENT_LEN]).hexdigest()
    if actual != expected:
        raise _fail(path, "file digest mismatch: the archive's bytes were changed after writing (corrupted)")


def _read_members(path: Any, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict, dict[str, bytes]]:
    max_bytes = _check_max_bytes(max_bytes)
    if len(data) > max_bytes + _ZIP_OVERHEAD:
        raise _fail(path, f"{len(data):,} bytes, more than the reading cap max_bytes={max_bytes:,} (refused)")
    with _open_zip(path, data) as zf:
        declared_total = sum(info.file_size for info in zf.infolist())
        if declared_total > max_bytes:
            raise _fail(
                path,
                f"its members declare {declared_total:,} bytes uncompressed, more than the reading cap "
                f"max_bytes={max_bytes:,} (refused before inflating; pass a larger max_bytes if you trust it)",
            )
        manifest = _read_manifest(path, zf)
        raw: dict[str, bytes] = {}
        json_bytes = 0
        for name, entry in manifest["members"].items():
            info = zf.getinfo(name)
            if info.file_size != entry["size"]:
                raise _fail(path, f"member {name!r} has {info.file_size} bytes, the manifest says {entry['size']}")
            if name.endswith(".json"):
                json_bytes += info.file_size
                if json_bytes > MAX_JSON_BYTES:
                    raise _fail(path, f"member {name!r} brings the JSON members to {json_bytes:,} bytes, more than "
                                      f"{MAX_JSON_BYTES:,} (refused before inflating)")
            elif info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise _fail(path, f"member {name!r} is compressed (zip method {info.compress_type}); lifelong stores "
                                  "tensor members uncompressed (refused: it could inflate far beyond the file)")
            raw[name] = _inflate(path, zf, name, info.file_size, entry["sha256"])
    _check_digest(path, data)
    return manifest, raw


def _decode_member(path: Any, name: str, blob: bytes) -> Any:
    """Decode one verified member; whatever is wrong with it is one ``CheckpointError`` naming
    ``path`` and ``name`` (whatever the decoder raised, ``MemoryError`` and ``RecursionError``
    included)."""
    if KIND_BY_SUFFIX[pathlib.PurePosixPath(name).suffix] == "json":
        return _parse_json(path, name, blob)
    try:
        tree = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:  # the safe unpickler raises UnpicklingError, RuntimeError, ...
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise _fail(path, f"member {name!r} refused by the safe tensor loader ({type(exc).__name__}: {first})") from exc
    try:
        _check_tree(tree, 0)
        return decode_tensor_tree(tree)
    except Exception as exc:  # TypeError, ValueError (a bad dtype tag), RecursionError ...
        raise _fail(path, f"member {name!r} holds data of a kind not allowed ({type(exc).__name__}: {exc})") from exc


def _reject_constant(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def _check_tree(value: Any, depth: int) -> None:
    if depth > MAX_TREE_DEPTH:
        raise TypeError(f"nesting deeper than {MAX_TREE_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"dict key of type {type(key).__name__}")
            _check_tree(item, depth + 1)
        if NDARRAY_TAG in value and not (isinstance(value[NDARRAY_TAG], torch.Tensor)
                                         and isinstance(value.get("dtype"), str)):
            raise TypeError(f"malformed {NDARRAY_TAG} entry")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_tree(item, depth + 1)
        return
    raise TypeError(type(value).__qualname__)


def _decode_all(path: Any, raw: dict[str, bytes]) -> dict[str, Any]:
    try:
        return {name: _decode_member(path, name, blob) for name, blob in raw.items()}
    except MemoryError as exc:  # a member that decodes to more than this machine holds
        raise _fail(path, "a member needs more memory to decode than is available (refused)") from exc


def unpack(data: bytes, path: Any = "<bytes>", max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Verify and decode checkpoint bytes into ``{member name: content}`` (the manifest excluded)."""
    _, raw = _read_members(path, data, max_bytes)
    return _decode_all(path, raw)


def read_archive(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Verify and decode the checkpoint at ``path``; see :func:`unpack`."""
    return unpack(_read_file(path, _check_max_bytes(max_bytes)), path, max_bytes)


def verify_and_decode(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[dict, dict[str, Any]]:
    """:func:`verify`, also returning the decoded members."""
    data = _read_file(path, _check_max_bytes(max_bytes))
    manifest, raw = _read_members(path, data, max_bytes)
    return manifest, _decode_all(path, raw)


def verify(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> dict:
    """Check the archive at ``path`` completely and return its manifest.

    Every member is checked against its checksum and decoded with the safe loaders, exactly as
    loading does, within the reading bounds (``max_bytes`` uncompressed, 1 GiB by default).
    Raises ``FileNotFoundError`` for a missing path and :class:`lifelong.CheckpointError`
    (naming the path and the fault) for anything else.
    (:func:`lifelong.checkpoint.verify` additionally checks a model checkpoint's description.)
    """
    return verify_and_decode(path, max_bytes)[0]
