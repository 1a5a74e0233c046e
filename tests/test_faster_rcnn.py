"""The faster-rcnn plug-in: built offline with the particles' anchors, the slice's size and grayscale statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

from architectures.faster_rcnn import DEFAULTS, FasterRCNNSlices, SliceSampler
from architectures.parts.slices import SliceSpec
from benchmark.errors import BenchError
from benchmark.particles import ParticleTable

PARTICLES = ParticleTable.czii()


def detector(pixel: float = 10.012, shape: tuple[int, int] = (120, 160), **config) -> FasterRCNNSlices:
    """A plug-in as fit leaves it before training: slice size, statistics and pixel size known, network built."""
    model = FasterRCNNSlices({"backbone": "mobilenet_v3_large_fpn", **config}, PARTICLES, "cpu", seed=0)
    model.shape, model.statistics, model.pixel = shape, (0.4, 0.2), pixel
    model.network = model._build()
    return model


def test_anchors_are_squares_spanning_the_particles_boxes_at_the_slice_level():
    model = detector(pixel=20.0, z_fraction=0.5)
    sizes = model.anchor_sizes()
    # apo-ferritin (60 Å) at half radius off-centre: 2 x 3 px x sqrt(0.75); ribosome (150 Å) whole: 15 px
    assert sizes == pytest.approx((2 * 3 * np.sqrt(0.75), np.sqrt(2 * 3 * np.sqrt(0.75) * 15), 15.0))
    generator = model.network.rpn.anchor_generator
    assert all(s == pytest.approx(sizes) for s in generator.sizes)
    assert all(ratios == (1.0,) for ratios in generator.aspect_ratios)
    assert model.network.rpn.head.cls_logits.out_channels == 3  # one anchor per size and location


def test_the_study_backbone_is_torchvisions_resnet50_fpn_v2_with_the_particles_anchors():
    model = detector(backbone="resnet50_fpn_v2", pixel=10.0, anchor_sizes=4)
    reference = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=7)
    shapes = {name: tuple(value.shape) for name, value in model.network.state_dict().items()}
    expected = {name: tuple(value.shape) for name, value in reference.state_dict().items()}
    assert set(shapes) == set(expected)
    assert {name for name in shapes if shapes[name] != expected[name]} == {
        "rpn.head.cls_logits.weight", "rpn.head.cls_logits.bias", "rpn.head.bbox_pred.weight", "rpn.head.bbox_pred.bias"
    }  # 4 anchors a location (the particles' sizes) where torchvision has 3 (aspect ratios)  # fmt: skip
    assert model.network.rpn.anchor_generator.sizes == (model.anchor_sizes(),) * 5


def test_slices_keep_their_size_and_grayscale_statistics():
    transform = detector(shape=(120, 160)).network.transform
    assert (transform.min_size, transform.max_size) == ((120,), 160)
    assert transform.image_mean == [0.4] * 3 and transform.image_std == [0.2] * 3
    image = torch.rand(3, 120, 160)
    batch, _ = transform([image])
    assert tuple(batch.tensors.shape[-2:]) == (128, 160)  # not rescaled (padded to a multiple of 32 only)


def test_the_detector_is_built_offline_and_fully_trainable():
    network = detector().network
    assert all(p.requires_grad for p in network.backbone.body.parameters())
    assert network.roi_heads.box_predictor.cls_score.out_features == 7  # background + labels 1..6
    layers = {type(m).__name__ for m in network.backbone.body.modules()}
    assert "BatchNorm2d" in layers and "FrozenBatchNorm2d" not in layers  # no pretrained statistics to freeze


def test_pretrained_takes_a_local_state_dict(tmp_path):
    first = detector()
    torch.save(first.network.state_dict(), tmp_path / "weights.pt")
    other = FasterRCNNSlices(
        {"backbone": "mobilenet_v3_large_fpn", "pretrained": str(tmp_path / "weights.pt")}, PARTICLES, "cpu", seed=5
    )
    other.shape, other.statistics, other.pixel = first.shape, first.statistics, first.pixel
    loaded = other._build()
    for name, value in first.network.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


@pytest.mark.parametrize(
    ("config", "message"),
    [({"backbone": "vgg16"}, "backbone 'vgg16' is one of"), ({"frobnicate": 1}, "no config option(s) 'frobnicate'")],
)
def test_bad_configs_are_named(config, message):
    with pytest.raises(BenchError) as error:
        FasterRCNNSlices(config, PARTICLES, "cpu", seed=0)
    assert message in str(error.value)


def test_the_study_backbone_is_the_default():
    assert DEFAULTS["backbone"] == "resnet50_fpn_v2" and DEFAULTS["neighbours"] == 1


def test_training_slices_hold_particles_as_often_as_asked_and_come_with_their_boxes(copick_project):
    from benchmark.data import Project
    from benchmark.job import load_samples
    from benchmark.suite import DataSpec

    picks = {"ribosome": np.array([[300.0, 200.0, 100.0]])}
    config = copick_project(runs=("TS_1", "TS_2"), shape=(32, 64, 80), picks=picks, true_voxel_size=10.0)
    samples = load_samples(Project(config), ["TS_1", "TS_2"], DataSpec("none", voxel_size=10.0))
    options = {**DEFAULTS, "positive_share": 1.0}
    sampler = SliceSampler(samples, PARTICLES, SliceSpec(neighbours=1, channels=3), options, seed=0)
    assert sampler.shape == (64, 80) and 0.4 < sampler.statistics[0] < 0.6
    images, targets = sampler.batch(16, "cpu")
    assert all(tuple(image.shape) in ((3, 64, 80), (3, 80, 64)) for image in images)  # turned or not
    assert all(len(target["boxes"]) == 1 and target["labels"].tolist() == [4] for target in targets)
    sides = pd.DataFrame([(t["boxes"][0, 2] - t["boxes"][0, 0]).item() for t in targets])
    assert sides[0].between(2 * np.sqrt(15**2 - 7.5**2), 30.0).all()  # cross-sections within half the radius


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_the_backbone_runs_in_the_suites_precision_and_the_heads_in_fp32(precision):
    model = detector()
    model.precision = precision
    model.network = model._build()
    model.network.train()
    seen = {}

    def record(name: str):
        def hook(module, inputs, output) -> None:
            seen.setdefault(name, output.dtype)

        return hook

    first = next(m for m in model.network.backbone.modules() if isinstance(m, torch.nn.Conv2d))
    first.register_forward_hook(record("backbone"))
    model.network.roi_heads.box_predictor.cls_score.register_forward_hook(record("head"))
    images = [torch.rand(3, 120, 160)]
    targets = [{"boxes": torch.tensor([[20.0, 20.0, 32.0, 32.0]]), "labels": torch.tensor([1])}]
    losses = model.network(images, targets)
    assert seen["backbone"] == (torch.bfloat16 if precision == "bf16" else torch.float32)
    assert seen["head"] == torch.float32  # box coding and the losses stay in fp32
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in losses.values())
