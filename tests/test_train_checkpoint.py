"""Checkpoints: round trip, atomic writes, clear errors for bad files, torch twin and back."""
import os

import numpy as np
import pytest

from minirnn import _io
from minirnn.train.checkpoint import (FORMAT_VERSION, CheckpointError, load_checkpoint,
                                load_model_state, save_checkpoint)
from minirnn.nn.models import LanguageModel, SequenceClassifier
from minirnn.train.optim import Adam

RNG = np.random.default_rng(0)
TOKENS = RNG.integers(0, 7, size=(3, 5))
LENGTHS = np.array([5, 2, 4])


def _trained(seed=0):
    from minirnn.nn.losses import cross_entropy
    m = SequenceClassifier(7, 3, 4, cell="lstm", embedding_dim=3, seed=seed)
    opt = Adam(m, lr=0.01)
    for _ in range(2):
        m.zero_grad()
        loss, dz = cross_entropy(m(TOKENS, LENGTHS), np.array([0, 2, 1]))
        m.backward(dz)
        opt.step()
    return m, opt


def test_round_trip(tmp_path):
    m, opt = _trained()
    path = tmp_path / "m.npz"
    save_checkpoint(path, m, opt, config={"hidden": 4, "nested": {"a": [1, 2]}},
                    vocab=list("abcdefg"), labels=["x", "y", "z"], step=17, extra={"note": "hi"})
    ck = load_checkpoint(path)
    assert ck.format_version == FORMAT_VERSION and ck.step == 17
    assert ck.config == {"hidden": 4, "nested": {"a": [1, 2]}}
    assert ck.vocab == list("abcdefg") and ck.labels == ["x", "y", "z"] and ck.extra == {"note": "hi"}
    assert list(ck.state_dict) == list(m.state_dict())         # torch's keys, in order
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(ck.state_dict[k], v)
    fresh = SequenceClassifier(7, 3, 4, cell="lstm", embedding_dim=3, seed=99)
    load_model_state(fresh, ck)
    np.testing.assert_array_equal(fresh(TOKENS, LENGTHS), m(TOKENS, LENGTHS))
    opt2 = Adam(fresh, lr=0.5).load_state_dict(ck.optimizer_state)
    assert opt2.lr == 0.01 and opt2.steps == 2
    for name, slots in opt.state.items():
        for slot, v in slots.items():
            np.testing.assert_array_equal(opt2.state[name][slot], v)
    # no optimiser: none comes back
    save_checkpoint(path, m)
    assert load_checkpoint(path).optimizer_state is None


def test_write_is_atomic(tmp_path, monkeypatch):
    m, opt = _trained()
    path = tmp_path / "m.npz"
    save_checkpoint(path, m, step=1)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, m, opt, step=2)
    monkeypatch.undo()
    # a failure after part of the bytes were written leaves the old file too
    real = _io.os.replace

    def crash_before_rename(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(_io.os, "replace", crash_before_rename)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, m, opt, step=3)
    monkeypatch.setattr(_io.os, "replace", real)
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 1
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]           # no temp files left behind


def test_bad_files_raise_checkpoint_error(tmp_path):
    m, opt = _trained()
    good = tmp_path / "good.npz"
    save_checkpoint(good, m, opt, step=3)
    data = good.read_bytes()

    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_checkpoint(tmp_path / "nope.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.npz.*not a readable"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError, match="garbage.npz"):
        load_checkpoint(garbage)
    corrupt = tmp_path / "corrupt.npz"               # flip bytes inside the archive's data
    buf = bytearray(data)
    mid = len(buf) // 3
    buf[mid:mid + 64] = bytes(b ^ 0xFF for b in buf[mid:mid + 64])
    corrupt.write_bytes(bytes(buf))
    with pytest.raises(CheckpointError, match="corrupt.npz"):
        load_checkpoint(corrupt)
    single = tmp_path / "single.npy"
    np.save(single, np.arange(3.0))
    with pytest.raises(CheckpointError, match="not an .npz"):
        load_checkpoint(single)

    with np.load(good) as z:
        entries = {k: z[k] for k in z.files}
    no_version = tmp_path / "noversion.npz"
    np.savez(no_version, **{k: v for k, v in entries.items() if k != "format_version"})
    with pytest.raises(CheckpointError, match="noversion.npz.*missing 'format_version'"):
        load_checkpoint(no_version)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **dict(entries, format_version=np.array(FORMAT_VERSION + 1)))
    with pytest.raises(CheckpointError, match=f"expected format_version {FORMAT_VERSION}"):
        load_checkpoint(wrong)
    no_meta = tmp_path / "nometa.npz"
    np.savez(no_meta, **{k: v for k, v in entries.items() if k != "meta/config"})
    with pytest.raises(CheckpointError, match="missing entry 'meta/config'"):
        load_checkpoint(no_meta)
    no_model = tmp_path / "nomodel.npz"
    np.savez(no_model, **{k: v for k, v in entries.items() if not k.startswith("model/")})
    with pytest.raises(CheckpointError, match="no model weights"):
        load_checkpoint(no_model)


def test_mismatched_model_raises_and_changes_nothing(tmp_path):
    m, _ = _trained()
    path = tmp_path / "m.npz"
    save_checkpoint(path, m)
    other = SequenceClassifier(7, 3, 5, cell="lstm", embedding_dim=3, seed=1)  # hidden 5, not 4
    before = other.state_dict()
    with pytest.raises(CheckpointError, match=r"m\.npz.*does not fit SequenceClassifier.*shape"):
        load_model_state(other, path)
    for k, v in before.items():
        np.testing.assert_array_equal(other.state_dict()[k], v)
    one_hot = SequenceClassifier(7, 3, 4, cell="lstm", embedding_dim=None, seed=1)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['embedding.weight'\]"):
        load_model_state(one_hot, path)
    rnn = SequenceClassifier(7, 3, 4, cell="rnn_tanh", embedding_dim=3, seed=1)
    with pytest.raises(CheckpointError, match=r"rnn.weight_ih_l0.*expected shape \(4, 3\)"):
        load_model_state(rnn, path)
    with pytest.raises(ValueError, match="step: expected an integer"):
        save_checkpoint(path, m, step="one")


def test_unserialisable_metadata_is_refused(tmp_path):
    m, _ = _trained()
    with pytest.raises(TypeError, match="config: expected JSON"):
        save_checkpoint(tmp_path / "m.npz", m, config={"f": object()})
    assert not (tmp_path / "m.npz").exists()


def test_checkpoint_loads_into_torch_twin_and_back(tmp_path):
    torch = pytest.importorskip("torch")
    from minirnn.interop.torch import copy_from_torch, to_torch
    lm = LanguageModel(9, 4, 5, cell="lstm", num_layers=2, seed=3)
    path = tmp_path / "lm.npz"
    save_checkpoint(path, lm)
    twin = to_torch(LanguageModel(9, 4, 5, cell="lstm", num_layers=2, seed=77))
    load_model_state(twin, path)                             # into torch, keys preserved
    assert list(twin.state_dict()) == list(lm.state_dict())
    tokens = np.random.default_rng(1).integers(0, 9, size=(2, 6))
    with torch.no_grad():
        t_logits, _ = twin(tokens)
    np.testing.assert_allclose(t_logits.numpy(), lm(tokens)[0], rtol=1e-12, atol=1e-14)
    with torch.no_grad():                                    # change it in torch, and back
        twin.fc.bias.add_(1.0)
    back = LanguageModel(9, 4, 5, cell="lstm", num_layers=2, seed=5)
    copy_from_torch(back, twin)
    save_checkpoint(path, back)
    np.testing.assert_array_equal(load_checkpoint(path).state_dict["fc.bias"],
                                  lm.state_dict()["fc.bias"] + 1.0)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model_state(to_torch(LanguageModel(9, 4, 6, seed=0)), path)
