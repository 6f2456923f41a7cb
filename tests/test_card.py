"""Model cards: a bad card fails at its line with what to fix; a good one round-trips."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from igtflow.perception.card import CardError, load_card, write_card

CARD = """\
name: us-seg
task: segmentation
architecture: tiny-unet
runtime: torchscript
weights: w.pt
sha256: {sha}
input:
  modality: US
  height: 256
  width: {width}
labels: {{0: background, 1: organ, 2: vessel, 3: lesion}}
"""


def _card(tmp_path: Path, width: str = "256", weights: bytes = b"weights") -> Path:
    (tmp_path / "w.pt").write_bytes(weights)
    sha = hashlib.sha256(b"weights").hexdigest()
    path = tmp_path / "us-seg.card.yaml"
    path.write_text(CARD.format(sha=sha, width=width))
    return path


def test_a_good_card_loads_and_round_trips(tmp_path: Path) -> None:
    card, weights = load_card(_card(tmp_path))
    assert weights == (tmp_path / "w.pt").resolve()
    assert card.label_ids() == [0, 1, 2, 3]
    write_card(card, tmp_path / "again.card.yaml")
    assert load_card(tmp_path / "again.card.yaml")[0] == card


def test_a_bad_value_is_reported_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(CardError, match=r"us-seg.card.yaml:10: input.width: .*greater than 0"):
        load_card(_card(tmp_path, width="-3"))


def test_weights_changed_after_the_card_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CardError, match=r":6: the weights' SHA-256 is .* file changed"):
        load_card(_card(tmp_path, weights=b"other weights"))


def test_an_unknown_label_name_is_refused(tmp_path: Path) -> None:
    path = _card(tmp_path)
    path.write_text(path.read_text().replace("3: lesion", "3: tumour"))
    with pytest.raises(CardError, match=r":11: labels: .*'tumour', not a phantom label"):
        load_card(path)
