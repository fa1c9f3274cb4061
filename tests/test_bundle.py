"""Bundles: safetensors + JSON round trip, and every way a bundle can be broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from grutune.bundle import MANIFEST, WEIGHTS, load_bundle, manifest_checksum, save_bundle
from grutune.cli import app
from grutune.config import ModelConfig
from grutune.exceptions import BundleError
from grutune.nn.model import Ensemble, SequenceModel

from .hostile import assert_refused


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
    save_bundle(tmp_path, model, {"task": "text", "labels": ["a", "b", "c"],
                                  "vocab": [f"w{i}" for i in range(12)]}, {})
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
    assert manifest["format_version"] == 2 and len(manifest["weights_sha256"]) == 64
    assert manifest["checksum"] == manifest_checksum(manifest)
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
    elif how == "config mismatch":  # a hand-made manifest, with a checksum that fits it
        manifest["members"][0]["model_config"]["hidden_size"] = 5
        manifest["checksum"] = manifest_checksum(manifest)
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


# --- tampering, through `grutune predict MODEL FILE` ---------------------------------------
# Every case: exit 2, one `error:` line, no traceback, nothing written (--out not created).

CHANGED = "bundle.json: checksum does not match; the bundle was changed or damaged"


def _edit(path, change, sign=False):
    """Apply ``change(manifest)`` to bundle.json; ``sign``: a forger who also recomputes
    the checksum (the structure checks must still catch what is wrong)."""
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    if sign:
        manifest["checksum"] = manifest_checksum(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _refused_predict(path, tmp_path, message):
    rows = tmp_path / "rows.csv"
    if not rows.exists():
        rows.write_text("text\nhello w1 w2\n")
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir(exist_ok=True)
    assert_refused(["predict", path, rows, "--out", out], message,
                   roots=[path, tmp_path / "out", tmp_path])
    assert not out.exists() and not list(out.parent.iterdir())


def _swap_labels(m):
    m["state"]["labels"].reverse()


def _set(*keys_value):
    *keys, value = keys_value

    def change(m):
        target = m
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


UNSIGNED = {
    "label swap": _swap_labels,
    "state edit": _set("state", "vocab", 3, "spam"),
    "max_len edit": _set("state", "max_len", 2),
    "metrics edit": _set("metrics", "accuracy", 0.99),
    "weights_file escape": _set("weights_file", "../model.safetensors"),
    "checksum removed": lambda m: m.pop("checksum"),
    "checksum not a string": _set("checksum", 12),
    "extra key": _set("note", "hello"),
    "weights_sha256 edit": _set("weights_sha256", "0" * 64),
}


@pytest.mark.parametrize("how", list(UNSIGNED))
def test_any_edit_of_bundle_json_is_refused(bundle_dir, tmp_path, how):
    path, _ = bundle_dir
    _edit(path, UNSIGNED[how])
    _refused_predict(path, tmp_path, CHANGED)


SIGNED = {
    "labels not a list": (_set("state", "labels", 2), "state.labels must be a non-empty list"),
    "labels count": (_set("state", "labels", ["a", "b", "c"]),
                     "state.labels must be one per model output (2)"),
    "duplicate labels": (_set("state", "labels", ["a", "a"]), "state.labels must be distinct"),
    "label of a number": (_set("state", "labels", [1, 2]), "state.labels must be a non-empty"),
    "vocab length": (lambda m: m["state"]["vocab"].pop(), "state.vocab must be as long"),
    "vocab not a list": (_set("state", "vocab", "abc"), "state.vocab must be a list of strings"),
    "max_len a string": (_set("state", "max_len", "8"), "state.max_len must be a whole number"),
    "state not a mapping": (_set("state", []), "state must be a mapping"),
    "unknown task": (_set("state", "task", "poetry"), "state.task must be one of"),
    "members not a list": (_set("members", {"a": 1}), "members must be a non-empty list"),
    "no members": (_set("members", []), "members must be a non-empty list"),
    "member not a mapping": (_set("members", [3]), "members[0] must be a mapping"),
    "hidden_size a string": (_set("members", 0, "model_config", "hidden_size", "3"),
                             "members[0].model_config.hidden_size must be a whole number"),
    "hidden_size a float": (_set("members", 0, "model_config", "hidden_size", 3.5),
                            "members[0].model_config.hidden_size must be a whole number"),
    "bidirectional a string": (_set("members", 0, "model_config", "bidirectional", "yes"),
                               "bidirectional must be true or false"),
    "unknown config field": (_set("members", 0, "model_config", "evil", 1),
                             "must be made of ModelConfig fields"),
    "large hidden_size": (_set("members", 0, "model_config", "hidden_size", 10**5),
                          "weights do not match the model config"),
    "huge hidden_size": (_set("members", 0, "model_config", "hidden_size", 10**9),
                         "invalid model description"),
    "too many layers": (_set("members", 0, "model_config", "num_layers", 10**6),
                        "num_layers must be at most"),
    "bad pooling": (_set("members", 0, "model_config", "pooling", "x" * 500),
                    "invalid model description"),
    "combine": (_set("combine", "mean"), "combine must be 'probability' for a text model"),
    "metrics not a mapping": (_set("metrics", [1]), "metrics must be a mapping"),
    "weights_sha256 not hex": (_set("weights_sha256", "x"), "weights_sha256 must be 64 hex"),
    "weights_file parent": (_set("weights_file", "../model.safetensors"),
                            "weights_file must be a file name inside the bundle directory"),
    "weights_file absolute": (_set("weights_file", "/etc/passwd"),
                              "weights_file must be a file name inside the bundle directory"),
    "weights_file in a folder": (_set("weights_file", "sub/model.safetensors"),
                                 "weights_file must be a file name inside the bundle"),
    "weights_file dot-dot": (_set("weights_file", ".."), "weights_file must be a file name"),
    "weights_file a number": (_set("weights_file", 7), "weights_file must be a file name"),
    "format_version a string": (_set("format_version", "2"), "unknown bundle format '2'"),
    "format_version true": (_set("format_version", True), "unknown bundle format True"),
    "format_version 0": (_set("format_version", 0), "unknown bundle format 0"),
}


@pytest.mark.parametrize("how", list(SIGNED))
def test_hand_made_manifests_are_refused(bundle_dir, tmp_path, how):
    path, _ = bundle_dir
    change, message = SIGNED[how]
    _edit(path, change, sign=True)
    _refused_predict(path, tmp_path, message)


@pytest.mark.parametrize(("text", "message"), [
    ('{"format_version": 2, "members": [', "corrupted manifest"),
    ("", "corrupted manifest"),
    ("[" * 100_000 + "]" * 100_000, "corrupted manifest"),
    ('{"format_version": 2, "format_version": 2}', "corrupted manifest (the key "
                                                   "'format_version' appears twice)"),
    ('{"format_version": 1' + "0" * 5000 + "}", "corrupted manifest"),
    ("\xff\xfe", "corrupted manifest"),
    ("[1, 2]", "not a grutune bundle"),
])
def test_truncated_or_garbled_json_is_refused(bundle_dir, tmp_path, text, message):
    path, _ = bundle_dir
    (path / MANIFEST).write_bytes(text.encode("latin-1"))
    _refused_predict(path, tmp_path, message)


def test_truncated_manifest_is_refused(bundle_dir, tmp_path):
    path, _ = bundle_dir
    data = (path / MANIFEST).read_bytes()
    (path / MANIFEST).write_bytes(data[: len(data) // 2])
    _refused_predict(path, tmp_path, "corrupted manifest")


def test_symlinked_weights_out_of_the_bundle_are_refused(bundle_dir, tmp_path):
    path, _ = bundle_dir
    outside = tmp_path / "elsewhere.safetensors"
    (path / WEIGHTS).rename(outside)
    (path / WEIGHTS).symlink_to(outside)  # same bytes, same checksum: still refused
    _refused_predict(path, tmp_path, "a symbolic link out of the bundle directory")


def test_symlinked_bundle_folder_is_fine(bundle_dir, tmp_path):
    """A link to the bundle folder, or a weights link within it, is not an escape."""
    path, model = bundle_dir
    (path / "weights-v1.safetensors").write_bytes((path / WEIGHTS).read_bytes())
    (path / WEIGHTS).unlink()
    (path / WEIGHTS).symlink_to("weights-v1.safetensors")
    link = tmp_path / "link"
    link.symlink_to(path)
    loaded = load_bundle(link)
    x, n = torch.randint(1, 12, (2, 5)), torch.tensor([5, 3])
    assert torch.equal(loaded.model(x, n), model.eval()(x, n))


# --- format 1 (bundles of grutune before the checksum) ------------------------------------

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def v1_text(tmp_path):
    shutil.copytree(GOLDEN / "v1-text", tmp_path / "v1")
    return tmp_path / "v1" / "model"


def test_version_1_loads_and_checks_what_it_has(v1_text, tmp_path):
    assert json.loads((v1_text / MANIFEST).read_text())["format_version"] == 1
    load_bundle(v1_text)
    data = bytearray((v1_text / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (v1_text / WEIGHTS).write_bytes(bytes(data))
    _refused_v1(v1_text, tmp_path, "checksum does not match bundle.json")


def _refused_v1(path, tmp_path, message):
    out = tmp_path / "out" / "p.csv"
    out.parent.mkdir(exist_ok=True)
    assert_refused(["predict", path, tmp_path / "v1" / "input.csv", "--out", out], message,
                   [path, tmp_path])
    assert not out.exists()


V1 = {**{k: SIGNED[k] for k in ("weights_file parent", "hidden_size a string", "vocab length",
                                  "state not a mapping", "members not a list")},
      "labels count": (_set("state", "labels", ["a", "b"]),
                       "state.labels must be one per model output (3)")}


@pytest.mark.parametrize("how", list(V1))
def test_version_1_structure_is_checked(v1_text, tmp_path, how):
    change, message = V1[how]
    _edit(v1_text, change)
    _refused_v1(v1_text, tmp_path, message)


def test_version_1_symlinked_weights_are_refused(v1_text, tmp_path):
    outside = tmp_path / "w.safetensors"
    (v1_text / WEIGHTS).rename(outside)
    (v1_text / WEIGHTS).symlink_to(outside)
    _refused_v1(v1_text, tmp_path, "a symbolic link out of the bundle")


def test_checksum_survives_what_json_writes(tmp_path):
    """NumPy scalars, NaN, tuples and non-ASCII text: the checksum is of what is written."""
    import numpy as np

    cfg = ModelConfig(num_outputs=2, vocab_size=4, embed_dim=2, hidden_size=2)
    state = {"task": "text", "labels": ["é", "ß"], "vocab": ["<pad>", "<unk>", "café", "日本"]}
    metrics = {"accuracy": np.float32(0.25), "roc_auc": float("nan"), "n": np.int64(3),
               "interval": (0.1, 0.2), "big": float("inf")}
    save_bundle(tmp_path, Ensemble([SequenceModel(cfg)], "probability"), state, metrics,
                extra={"params": [{"lr": np.float64(1e-3)}]})
    loaded = load_bundle(tmp_path)
    assert loaded.state["labels"] == ["é", "ß"] and loaded.manifest["metrics"]["n"] == 3
    assert loaded.manifest["format_version"] == 2
