"""The checkpoint container: round trip, verification, refusal of crafted files, atomic writes."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from lifelong import CheckpointError
from lifelong.checkpoint import archive
from lifelong.checkpoint.archive import pack, pack_bytes, read_archive, unpack, verify, write_archive


def _state():
    return {
        "meta.json": {"a": 1, "b": [1.5, "x", None, True], "c": {"d": -3}},
        "weights.pt": {
            "w": torch.arange(12, dtype=torch.float32).reshape(3, 4),
            "nested": [torch.zeros(2, dtype=torch.int64), (1, 2.5, "s", None)],
            "arr": np.arange(6, dtype=np.float32).reshape(2, 3),
            "flags": np.array([True, False]),
        },
    }


def _assert_state_equal(got, want):
    assert got["meta.json"] == want["meta.json"]
    w, g = want["weights.pt"], got["weights.pt"]
    assert torch.equal(g["w"], w["w"])
    assert torch.equal(g["nested"][0], w["nested"][0])
    assert g["nested"][1] == w["nested"][1]
    assert isinstance(g["arr"], np.ndarray) and g["arr"].dtype == np.float32
    np.testing.assert_array_equal(g["arr"], w["arr"])
    assert g["flags"].dtype == np.bool_ and g["flags"].tolist() == [True, False]


def _members_bytes(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if n != archive.MANIFEST_NAME}


def test_round_trip_file_and_manifest(tmp_path):
    path = write_archive(tmp_path / "a.zip", _state())
    _assert_state_equal(read_archive(path), _state())
    manifest = verify(path)
    assert manifest["format"] == "lifelong-checkpoint"
    assert manifest["format_version"] == archive.FORMAT_VERSION
    members = manifest["members"]
    assert set(members) == {"meta.json", "weights.pt"}
    assert members["meta.json"]["kind"] == "json" and members["weights.pt"]["kind"] == "tensors"
    raw = _members_bytes(path.read_bytes())
    for name, entry in members.items():
        assert entry["sha256"] == hashlib.sha256(raw[name]).hexdigest()
        assert entry["size"] == len(raw[name])
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_pack_is_deterministic_and_does_not_alias():
    state = _state()
    assert pack(state) == pack(_state())
    out = unpack(pack(state))
    out["weights.pt"]["w"].add_(1.0)
    assert torch.equal(state["weights.pt"]["w"], _state()["weights.pt"]["w"])


def test_unstorable_values_are_value_errors():
    with pytest.raises(ValueError, match="weights.pt.*function"):
        pack({"weights.pt": {"f": lambda x: x}})
    with pytest.raises(ValueError, match="non-finite"):
        pack({"meta.json": {"x": float("nan")}})
    with pytest.raises(ValueError, match="member name"):
        pack({"../evil.json": {}})
    with pytest.raises(ValueError, match="member name"):
        pack({"evil.pkl": {}})


def test_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_archive(tmp_path / "nope.zip")
    with pytest.raises(FileNotFoundError):
        verify(tmp_path / "nope.zip")


@pytest.mark.parametrize(
    "content, fault",
    [
        (b"", "empty file"),
        (b"hello, I am a text file\n", "not a zip archive"),
        (b"PK\x03\x04garbage", "truncated or corrupted"),
    ],
)
def test_not_a_checkpoint(tmp_path, content, fault):
    path = tmp_path / "x.zip"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=fault) as info:
        verify(path)
    assert str(path) in str(info.value)


def test_directory_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="directory"):
        read_archive(tmp_path)


def test_foreign_zip(tmp_path):
    path = tmp_path / "foreign.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", "{}")
        zf.writestr("policy.pth", b"\0")
    with pytest.raises(CheckpointError, match="no manifest.json.*Stable-Baselines3") as info:
        read_archive(path)
    assert str(path) in str(info.value)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "something-else", "format_version": 1}))
    with pytest.raises(CheckpointError, match="not a lifelong checkpoint"):
        read_archive(other)


def test_truncated_at_every_length_class(tmp_path):
    data = pack(_state())
    path = tmp_path / "t.zip"
    cuts = sorted({1, 4, 10, 100, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 22, len(data) - 1})
    for cut in cuts:
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError) as info:
            read_archive(path)
        assert str(path) in str(info.value), cut


def test_every_single_bit_flip_is_detected(tmp_path):
    """Flip one bit in every byte of a small archive: each copy is refused (zip headers, member
    data, manifest and the trailing digest alike), never silently loaded."""
    data = pack({"m.json": {"k": [1, 2, 3]}, "t.pt": {"x": torch.ones(3)}})
    path = tmp_path / "f.zip"
    undetected = []
    for pos in range(len(data)):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << (pos % 8)
        try:
            unpack(bytes(flipped), path)
        except CheckpointError as exc:
            assert str(path) in str(exc)
        else:
            undetected.append(pos)
    assert undetected == []


def test_bit_flip_in_member_names_member_checksum(tmp_path):
    data = bytearray(pack(_state()))
    raw = _members_bytes(bytes(data))
    offset = bytes(data).find(raw["weights.pt"][200:240])
    data[offset + 10] ^= 0x04
    path = tmp_path / "b.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights.pt") as info:
        verify(path)
    assert str(path) in str(info.value)


def _manifest_for(members: dict[str, bytes], **override) -> dict:
    manifest = {
        "format": archive.FORMAT_NAME,
        "format_version": archive.FORMAT_VERSION,
        "library_version": "0.1.0",
        "members": {
            n: {"kind": archive.KIND_BY_SUFFIX["." + n.rsplit(".", 1)[1]] if "." in n else "x",
                "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
            for n, b in members.items()
        },
    }
    manifest.update(override)
    return manifest


def test_newer_format_version_is_refused(tmp_path):
    members = _members_bytes(pack(_state()))
    path = tmp_path / "new.zip"
    path.write_bytes(pack_bytes(members, _manifest_for(members, format_version=archive.FORMAT_VERSION + 1)))
    with pytest.raises(CheckpointError, match="newer checkpoint format.*upgrade lifelong") as info:
        verify(path)
    assert str(path) in str(info.value)


def test_missing_and_unlisted_members_and_bad_kinds(tmp_path):
    members = _members_bytes(pack(_state()))
    path = tmp_path / "m.zip"

    manifest = _manifest_for(members)
    manifest["members"]["extra.json"] = {"kind": "json", "size": 2, "sha256": hashlib.sha256(b"{}").hexdigest()}
    path.write_bytes(pack_bytes(members, manifest))
    with pytest.raises(CheckpointError, match="missing member 'extra.json'"):
        verify(path)

    sneaky = dict(members, **{"sneaky.json": b"{}"})
    path.write_bytes(pack_bytes(sneaky, _manifest_for(members)))
    with pytest.raises(CheckpointError, match="'sneaky.json' is not listed in the manifest"):
        verify(path)

    evil = dict(members, **{"evil.pkl": pickle.dumps({"a": 1})})
    manifest = _manifest_for(members)
    manifest["members"]["evil.pkl"] = {"kind": "pickle", "size": len(evil["evil.pkl"]),
                                       "sha256": hashlib.sha256(evil["evil.pkl"]).hexdigest()}
    path.write_bytes(pack_bytes(evil, manifest))
    with pytest.raises(CheckpointError, match="'evil.pkl' has a name or kind that is not allowed"):
        verify(path)

    manifest = _manifest_for(members)
    manifest["members"]["weights.pt"]["kind"] = "json"
    path.write_bytes(pack_bytes(members, manifest))
    with pytest.raises(CheckpointError, match="kind 'json'"):
        verify(path)


class _Payload:
    """Unpickling this runs os.system(command): the classic malicious pickle."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _payloads(marker) -> dict[str, bytes]:
    command = f"echo pwned > {marker}"
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "evil": _Payload(command)}, buf)  # torch's zip-of-pickle format
    return {"torch_save": buf.getvalue(), "raw_pickle": pickle.dumps(_Payload(command), protocol=2)}


@pytest.mark.parametrize("member", ["meta.json", "weights.pt", "manifest.json"])
@pytest.mark.parametrize("payload", ["torch_save", "raw_pickle"])
def test_malicious_pickle_in_each_member_is_refused_and_not_executed(tmp_path, member, payload):
    marker = tmp_path / "pwned"
    blob = _payloads(marker)[payload]
    members = _members_bytes(pack(_state()))
    path = tmp_path / "evil.zip"
    if member == "manifest.json":
        # the whole manifest replaced by the payload
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("manifest.json", blob)
            for name, data in members.items():
                zf.writestr(name, data)
        path.write_bytes(buf.getvalue())
    else:
        members[member] = blob
        path.write_bytes(pack_bytes(members, _manifest_for(members)))  # checksums made to match
    with pytest.raises(CheckpointError) as info:
        read_archive(path)
    assert str(path) in str(info.value)
    with pytest.raises(CheckpointError):
        verify(path)
    assert not marker.exists(), "the payload was executed"


def test_safe_loader_refusal_message_names_the_member(tmp_path):
    marker = tmp_path / "pwned"
    members = _members_bytes(pack(_state()))
    members["weights.pt"] = _payloads(marker)["torch_save"]
    path = tmp_path / "evil.zip"
    path.write_bytes(pack_bytes(members, _manifest_for(members)))
    with pytest.raises(CheckpointError, match="'weights.pt' refused by the safe tensor loader"):
        read_archive(path)
    assert not marker.exists()


def test_atomic_write_keeps_previous_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.zip"
    write_archive(path, _state())
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(archive.os, "replace", boom)
    changed = _state()
    changed["meta.json"]["a"] = 2
    with pytest.raises(OSError, match="simulated"):
        write_archive(path, changed)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zip"]  # no temporary left behind
