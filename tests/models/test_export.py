import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import tiny_bundle, tone

from soundtag.audio.load import load_clip
from soundtag.inference.classifier import DEFAULT_MODEL, Classifier
from soundtag.interfaces.cli import main
from soundtag.models.cnn import ModelBundle, save_model
from soundtag.models.export import export_onnx
from soundtag.training.dataset import load_dataset


@pytest.fixture(scope="module", params=["mean", "mean+max", "attention"])
def bundle(request: pytest.FixtureRequest) -> ModelBundle:
    return tiny_bundle(["a", "b", "c", "d"], channels=(8, 16, 32), convs=(1, 1, 2), pooling=request.param)


def test_export_carries_metadata(bundle: ModelBundle, tmp_path: Path) -> None:
    path = export_onnx(bundle, tmp_path / "m.onnx")
    meta = json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["soundtag"])
    assert meta["classes"] == ["a", "b", "c", "d"] and meta["frontend"]["n_mels"] == 64


def test_onnx_backend_matches_torch(bundle: ModelBundle, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    clips = [tone(f, 16000, s) + 0.05 * rng.standard_normal(int(16000 * s)).astype(np.float32)
             for f, s in ((300, 5.0), (1200, 2.0), (5000, 11.0))]
    torch_clf = Classifier(bundle)
    onnx_clf = Classifier(bundle, backend="onnx", onnx_path=export_onnx(bundle, tmp_path / "m.onnx"))
    for clip in clips:
        a, b = torch_clf.analyze(clip, 16000, top_k=4), onnx_clf.analyze(clip, 16000, top_k=4)
        assert [t["label"] for t in a.tags] == [t["label"] for t in b.tags]
        np.testing.assert_allclose([t["score"] for t in a.tags], [t["score"] for t in b.tags], atol=1e-4)
        np.testing.assert_allclose(torch_clf.embed(clip, 16000), onnx_clf.embed(clip, 16000), atol=1e-4)
    short = Classifier(bundle, backend="onnx", onnx_path=tmp_path / "m.onnx", window=2.0, hop=1.0)
    assert len(short.analyze(clips[2], 16000).windows) == 10  # any window length runs through the graph


def test_cli_export_and_predict(bundle: ModelBundle, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    save_model(tmp_path / "m", bundle)
    assert main(["onnx", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "m" / "model.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    import soundfile as sf

    sf.write(tmp_path / "x.wav", tone(440.0, 16000, 3.0), 16000)
    assert main(["predict", str(tmp_path / "x.wav"), "--model", str(tmp_path / "m"), "--backend", "onnx"]) == 0


@pytest.mark.slow
def test_parity_on_fold1_of_real_esc50(real_esc50: Path, tmp_path: Path) -> None:
    """The shipped model on all 400 fold-1 clips: identical top-1 and probabilities within 1e-4 (measured: 3.7e-6)."""
    if not (DEFAULT_MODEL / "model.safetensors").exists():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
    dataset = load_dataset(real_esc50)
    _, test = dataset.split(1)
    clf = Classifier.load()
    waves = np.stack([load_clip(dataset.paths[i], clf.bundle.audio) for i in test])
    onnx_clf = Classifier(clf.bundle, backend="onnx", onnx_path=export_onnx(clf.bundle, tmp_path / "m.onnx"))
    a, b = clf.probabilities(waves), onnx_clf.probabilities(waves)
    assert (a.argmax(1) == b.argmax(1)).all()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)


def test_the_committed_onnx_is_the_shipped_model() -> None:
    """model.onnx is committed beside the weights; re-exported whenever they change (`soundtag onnx`)."""
    from conftest import REPO

    torch_clf, onnx_clf = Classifier.load(), Classifier.load(backend="onnx")
    waves = np.stack([load_clip(p, torch_clf.bundle.audio) for p in sorted((REPO / "examples").glob("*.flac"))])
    a, b = torch_clf.probabilities(waves), onnx_clf.probabilities(waves)
    assert (a.argmax(1) == b.argmax(1)).all()
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-4)
