"""``igtflow validate`` checks a perception node's model card against the graph: each problem at
the line of the parameter at fault, before any process starts.

Graph texts start on line 1; ``# N`` comments mark the lines that assertions name.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from igtflow.launch.graph_issues import GraphError
from igtflow.launch.graph_reader import parse_graph
from tests.helpers.cli import igtflow
from tests.helpers.perception_models import segmenter, tracker

GRAPH = """\
name: checked
nodes:
  - id: us
    uses: {source}
    params: {{width: {width}, height: {height}}}
  - id: seg
    uses: segment
    inputs: {{image: us/image}}
    params:
      model: "{model}"                # 10
      device: {device}                # 11
      other_size: {other_size}        # 12
"""


def graph(
    model: Path | str,
    source: str = "phantom-us",
    size: tuple[int, int] = (64, 64),
    device: str = "cpu",
    other_size: str = "resize",
) -> str:
    height, width = size
    return GRAPH.format(
        source=source,
        width=width,
        height=height,
        model=model,
        device=device,
        other_size=other_size,
    )


def issues(text: str) -> list[str]:
    with pytest.raises(GraphError) as failed:
        parse_graph(text, "g.yaml")
    return [str(issue) for issue in failed.value.issues]


def test_a_card_that_fits_the_wiring_validates(tmp_path: Path) -> None:
    model = segmenter(tmp_path)
    parse_graph(graph(model), "g.yaml")
    parse_graph(graph(model, size=(256, 256)), "g.yaml")  # same aspect: resized
    parse_graph(graph(model, source="synthetic-image"), "g.yaml")  # US by default


def test_a_card_for_another_modality_is_reported_at_the_model_line(tmp_path: Path) -> None:
    (problem,) = issues(graph(segmenter(tmp_path), source="phantom-fluoro"))
    assert problem.startswith("g.yaml:10: node 'seg' (segment): ")
    assert "takes 64×64 US frames, but input 'image' carries 64×64 XA frames" in problem


def test_a_size_the_node_would_refuse_is_reported_at_other_size(tmp_path: Path) -> None:
    (problem,) = issues(graph(segmenter(tmp_path), size=(128, 128), other_size="refuse"))
    assert problem.startswith("g.yaml:12: ")
    assert "every frame would be refused; set other_size: resize" in problem


def test_a_size_resizing_would_distort_is_reported(tmp_path: Path) -> None:
    (problem,) = issues(graph(segmenter(tmp_path), size=(64, 128)))
    assert problem.startswith("g.yaml:10: ") and "whose aspect resizing would distort" in problem


def test_a_bad_card_is_reported_with_its_own_line_too(tmp_path: Path) -> None:
    card = segmenter(tmp_path)
    card.write_text(card.read_text().replace("height: 64", "height: -1"))
    (problem,) = issues(graph(card))
    assert problem.startswith("g.yaml:10: ")
    assert f"{card}:" in problem and "input.height" in problem


def test_missing_weights_and_wrong_tasks_are_reported(tmp_path: Path) -> None:
    card = segmenter(tmp_path)
    (tmp_path / "seg-torchscript.pt").unlink()
    (missing,) = issues(graph(card))
    assert missing.startswith("g.yaml:10: ") and "weights 'seg-torchscript.pt' not found" in missing
    (wrong,) = issues(graph(tracker(tmp_path)))
    assert "is a tracking model; this node runs segmentation models" in wrong
    (unknown,) = issues(graph("no-such-model"))
    assert "no shipped model 'no-such-model'" in unknown


def test_a_segmentation_card_without_labels_is_reported(tmp_path: Path) -> None:
    (problem,) = issues(graph(segmenter(tmp_path, labels={0: "organ"})))
    assert "names 1 output class(es)" in problem


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_device_cuda_without_a_gpu_is_refused_at_its_line(tmp_path: Path) -> None:
    (problem,) = issues(graph(segmenter(tmp_path), device="cuda"))
    assert problem.startswith("g.yaml:11: ") and "no CUDA GPU; use device: auto or cpu" in problem


def test_the_validate_command_prints_the_card_problem_at_file_line(tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(graph(segmenter(tmp_path), source="phantom-fluoro"))
    done = igtflow("validate", str(path), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{path}:10: node 'seg' (segment): model" in done.stderr
    assert "Traceback" not in done.stderr


def test_track_checks_its_card_the_same_way(tmp_path: Path) -> None:
    text = graph(segmenter(tmp_path)).replace("uses: segment", "uses: track")
    (problem,) = issues(text)
    assert problem.startswith("g.yaml:10: node 'seg' (track): ")
    assert "is a segmentation model; this node runs tracking models" in problem
    parse_graph(graph(tracker(tmp_path)).replace("uses: segment", "uses: track"), "g.yaml")
