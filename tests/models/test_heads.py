"""Few-shot heads on AudioSet's embedding: saving, loading and refusing bad ones."""

from pathlib import Path

import numpy as np
import pytest
from conftest import clusters

from soundtag.errors import ModelError
from soundtag.models.heads import HEAD_FILE, HeadModel, load_head, save_head
from soundtag.training.few_shot import fit_head


def test_saved_heads_load_and_bad_ones_are_refused(tmp_path: Path) -> None:
    embeddings, labels = clusters(3)
    head = fit_head(embeddings, labels, ["a", "b", "c"])
    load = load_head(save_head(tmp_path / "h", head))
    np.testing.assert_array_equal(load.weight, head.weight)
    assert load.classes == head.classes and load.inference == head.inference
    save_head(tmp_path / "bad", HeadModel(["a", "b"], head.weight, head.bias))
    with pytest.raises(ModelError, match="do not fit 2 classes"):
        load_head(tmp_path / "bad")
    (tmp_path / "bad" / HEAD_FILE).write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a soundtag head"):
        load_head(tmp_path / "bad")
