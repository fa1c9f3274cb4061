"""Bundles: safetensors + JSON round trip, and every way a bundle can be broken."""

from __future__ import annotations

import json

import pytest
import torch

from grutune.bundle import MANIFEST, WEIGHTS, load_bundle, save_bundle
from grutune.cli import app
from grutune.config import ModelConfig
from grutune.exceptions import BundleError
from grutune.model import Ensemble, SequenceModel


@pytest.fixture
def bundle_dir(tmp_path):
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(num_outputs=2, vocab_size=12, embed_dim=4,
                                      hidden_size=3, bidirectional=True))
    state = {"task": "text", "text_column": "text", "labels": ["a", "b"], "label_kind": "str",
             "vocab": ["<pad>", "<unk>"] + [f"w{i}" for i in range(10)], "max_len": 8,
             "stop_words": False}
    model = Ensemble([model], "probability")
    save_bundle(tmp_path / "model", model, state, {"accuracy": 0.5})
    return tmp_path / "model", model


def test_ensemble_round_trip(tmp_path):
    cfgs = [ModelConfig(num_outputs=3, vocab_size=12, embed_dim=4, hidden_size=h)
            for h in (3, 5)]
    model = Ensemble([SequenceModel(c) for c in cfgs], "probability").eval()
    save_bundle(tmp_path, model, {"task": "text"}, {})
    loaded = load_bundle(tmp_path)
    x, n = torch.randint(1, 12, (4, 6)), torch.tensor([6, 2, 3, 1])
    assert [c.hidden_size for c in loaded.configs] == [3, 5]
    assert torch.equal(loaded.model(x, n), model(x, n))
    probs = torch.stack([m(x, n).softmax(-1) for m in model.members]).mean(0)
    torch.testing.assert_close(loaded.model(x, n).exp(), probs)


def test_round_trip_is_exact(bundle_dir):
    path, model = bundle_dir
    loaded = load_bundle(path)
    pairs = zip(model.state_dict().items(), loaded.model.state_dict().items(), strict=True)
    for (k, v), (k2, v2) in pairs:
        assert k == k2 and torch.equal(v, v2)
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["format_version"] == 1 and len(manifest["weights_sha256"]) == 64
    assert not list(path.glob("*.pkl")) and not list(path.glob("*.pt"))


def _break(path, how):
    manifest_path = path / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    if how == "corrupted manifest":
        manifest_path.write_text("{not json")
    elif how == "newer format":
        manifest["format_version"] = 99
        manifest_path.write_text(json.dumps(manifest))
    elif how == "weights changed":
        data = bytearray((path / WEIGHTS).read_bytes())
        data[-1] ^= 0xFF
        (path / WEIGHTS).write_bytes(bytes(data))
    elif how == "weights missing":
        (path / WEIGHTS).unlink()
    elif how == "manifest missing":
        manifest_path.unlink()
    elif how == "config mismatch":
        manifest["members"][0]["model_config"]["hidden_size"] = 5
        manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(("how", "message"), [
    ("corrupted manifest", "corrupted manifest"),
    ("newer format", "bundle format 99 is newer"),
    ("weights changed", "checksum does not match"),
    ("weights missing", "weights file is missing"),
    ("manifest missing", "bundle.json is missing"),
    ("config mismatch", "weights do not match the model config"),
])
def test_broken_bundles(bundle_dir, tmp_path, runner, how, message):
    path, _ = bundle_dir
    _break(path, how)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)
    rows = tmp_path / "rows.csv"
    rows.write_text("text\nhello\n")
    result = runner.invoke(app, ["predict", str(path), str(rows)])
    assert result.exit_code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
