"""Signed chain heads: the key on disk, the head's canonical form, and what a receiver checks."""

from __future__ import annotations

import dataclasses
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.store.chain import GENESIS, ChainHead
from monitor.store.signing import (
    HeadError,
    SignedHead,
    heads_in,
    key_path_for,
    load_or_create_key,
    parse_public_key,
    public_key_text,
    rotate_key,
    sign,
    successor_problem,
)

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
H1 = sign(KEY, ChainHead(5, "a" * 64), None, "start", 1_790_000_000.0)
H2 = sign(KEY, ChainHead(9, "b" * 64), H1, "interval", 1_790_000_300.0)


def test_key_is_created_once_0600_beside_the_store(tmp_path):
    path = key_path_for(tmp_path / "store.db")
    assert path.name == "store.db.signing-key.pem"
    first = load_or_create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_text(load_or_create_key(path).public_key()) == public_key_text(first.public_key())


@pytest.mark.parametrize(("head", "key", "problem"), [
    (H1, KEY, None),
    (H2, KEY, None),
    (H1, OTHER, "not the expected key"),
    (dataclasses.replace(H1, record_id=6), KEY, "signature does not match"),
    (dataclasses.replace(H1, hash="c" * 64), KEY, "signature does not match"),
    (dataclasses.replace(H1, signature="!!"), KEY, "signature does not match"),
], ids=["first", "second", "other key", "record changed", "hash changed", "signature garbled"])
def test_verify(head, key, problem):
    found = head.verify(key.public_key())
    assert found is None if problem is None else problem in (found or "")


def test_head_round_trips_through_its_canonical_json():
    import json

    assert SignedHead.from_dict(json.loads(H2.to_json())) == H2
    assert H2.prev == H1.digest() and H1.prev == GENESIS and (H1.seq, H2.seq) == (1, 2)


@pytest.mark.parametrize(("change", "named"), [
    ({"seq": "1"}, "seq: missing or not a int"),
    ({"hash": "xyz"}, "hash: not a SHA-256 in hex"),
    ({"surprise": 1}, "unknown field 'surprise'"),
    ({"signature": None}, "signature: missing or not a str"),
])
def test_from_dict_names_the_bad_field(change, named):
    with pytest.raises(HeadError, match=named):
        SignedHead.from_dict({**H1.to_dict(), **change}, "head")


@pytest.mark.parametrize(("last", "head", "problem"), [
    (None, H1, None),
    (H1, H2, None),
    (H2, H2, None),
    (H2, H1, "older than head 2"),
    (H1, sign(KEY, ChainHead(9, "b" * 64), None, "interval", 1.0), "two different signed heads numbered 1"),
    (H1, dataclasses.replace(H2, prev="e" * 64), "does not name head 1"),
    (H1, sign(OTHER, ChainHead(9, "b" * 64), H1, "interval", 2.0), "new key that no rotation announced"),
], ids=["first", "next", "again", "older", "fork", "unlinked", "unannounced key"])
def test_successor_problem(last, head, problem):
    found = successor_problem(last, head)
    assert found is None if problem is None else problem in (found or "")


@pytest.mark.parametrize(("text", "count"), [
    ('Nov 30 gw social-monitor[1]: {"message": "chain_head_signed", "signed_head": HEAD}\nnoise\n', 1),
    ('{"message": "x"}\n{"signed_head": HEAD}\n{"signed_head": HEAD}\n', 2),
    ('{"format": "social-monitor-export", "signed_head": HEAD, "files": {}}', 1),
    ("HEAD", 1),
], ids=["journal line", "two lines", "manifest", "bare head"])
def test_heads_in(text, count):
    assert heads_in(text.replace("HEAD", H1.to_json()), "f") == [H1] * count


def test_heads_in_a_file_without_any_is_one_line():
    with pytest.raises(HeadError, match="f: no signed chain head in it"):
        heads_in("hello\n", "f")


@pytest.mark.parametrize(("given", "named"), [
    ("ed25519:!!", "is not an Ed25519 public key"),
    ("ssh-ed25519 AAAA", "is not a public key"),
])
def test_parse_public_key_refuses_in_one_line(given, named):
    with pytest.raises(HeadError, match=named):
        parse_public_key(given)


def test_parse_public_key_reads_a_file(tmp_path):
    path = tmp_path / "gw.pub"
    path.write_text(public_key_text(KEY.public_key()) + "\n")
    assert public_key_text(parse_public_key(str(path))) == public_key_text(KEY.public_key())


def test_rotation_is_announced_by_the_old_key(tmp_path):
    path = key_path_for(tmp_path / "store.db")
    old = load_or_create_key(path)
    new, announce = rotate_key(path, H1, ChainHead(9, "b" * 64), 1_790_000_600.0)
    assert announce.verify(old.public_key()) is None
    assert announce.next_key == public_key_text(new.public_key()) != public_key_text(old.public_key())
    after = sign(new, ChainHead(10, "c" * 64), announce, "interval", 1_790_000_900.0)
    assert successor_problem(announce, after) is None
    assert [p.name for p in tmp_path.iterdir() if "retired" in p.name] == [f"{path.name}.retired-1790000600"]


@pytest.mark.integration
@pytest.mark.parametrize("module", ["monitor.store.signing", "monitor.store.anchors", "monitor.store.sqlite",
                                    "monitor.commands.store_commands"])
def test_reading_the_store_imports_no_cryptography(module):
    """`events` on a store starts in under 0.3 s: cryptography (~40 ms) loads only where a key is used."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('cryptography')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "[]"
