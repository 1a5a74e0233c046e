"""Faster R-CNN on 2D z-slices (torchvision), merged into 3D picks: the reference study's second architecture.

The detector is torchvision's, built offline: no ImageNet download (`weights=None`, `weights_backbone=None`; without
pretrained weights torchvision trains every layer with ordinary batch norm), with `pretrained` taking a local state
dict. Backbones: `resnet50_fpn_v2` (the study's) or `mobilenet_v3_large_fpn` for CPU budgets, whose FPN taps
`feature_levels` of MobileNetV3's stages (torchvision's default, the last two, is too coarse for particles a few
pixels wide). Anchors are squares (aspect ratio 1) whose sides span the particles' boxes at the slice level, from
the smallest cross-section used as a target to the largest diameter; every FPN level gets the same sizes, since
the particles are all small beside the slice and torchvision's RPN head needs one anchor count for every level.
`min_size` and `max_size` are the slice's own (torchvision would rescale 630 to 800), and the normalisation is the
grayscale mean and standard deviation of the training slices, not ImageNet's.

Slices come from the shared slice pipeline (`architectures.parts.slices`), 2.5D with one neighbour each side by
default (the three channels the backbones expect); per-slice detections are merged into 3D picks by
`architectures.parts.merge`, every cluster scored, for the runner's thresholds.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN, fasterrcnn_resnet50_fpn_v2
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from architectures.parts.device import autocast, to_device
from architectures.parts.merge import SliceBoxes, detect_slices, picks_from_detections
from architectures.parts.slices import SliceSpec, augment_slice, box_targets, normalised_volume, slice_images
from architectures.parts.training import SCHEDULE_DEFAULTS, Optimisation, check_schedule
from architectures.parts.volumes import class_count
from benchmark.data import Tomogram
from benchmark.errors import BenchError
from benchmark.interface import Architecture, Budget, Sample, Tracker
from benchmark.registry import register

DEFAULTS = {
    "backbone": "resnet50_fpn_v2",  # or "mobilenet_v3_large_fpn"
    "feature_levels": [2, 3, 4],  # MobileNetV3 stages the FPN taps (strides 8, 16, 32)
    "level": 0,  # pyramid level of the slices
    "neighbours": 1,  # slices each side as channels (2.5D); 0 repeats the slice three times
    "percentiles": [1.0, 99.0],  # intensity clip before scaling to [0, 1]
    "z_fraction": 0.5,  # target boxes on the slices within this fraction of the radius from a centre
    "box": "section",  # the cross-section's square, or "square": the full 2r square
    "anchor_sizes": 3,  # square anchors per location, spanning the particles' box sides
    "optimizer": "adamw",  # or "sgd" (momentum 0.9, torchvision's recipe)
    "lr": 1.0e-4,
    "weight_decay": 1.0e-4,
    "batch_size": 4,  # slices per step
    "steps_per_epoch": 100,
    "positive_share": 0.8,  # share of training slices that hold a particle (the rest anywhere)
    "proposals": [2000, 1000],  # RPN proposals kept before and after NMS, per image (torchvision's: 2000, 2000)
    "roi_batch": 512,  # sampled proposals per image for the box head (torchvision's default)
    "score_thresh": 0.05,  # lowest detection kept per slice (the runner tunes the 3D thresholds)
    "detections_per_slice": 100,
    "merge_xy": 0.5,  # x-y distance linking detections across slices, x the radius
    "merge_z": 2,  # slices a link may span (2 bridges one missed slice)
    "predict_batch": 8,
    "pretrained": None,  # path of a saved state dict to start from
    **SCHEDULE_DEFAULTS,  # warm-up and decay sized to the epoch bound, clipping, EMA (architectures.parts.training)
}
SEARCH_SPACE = {  # what bench tune searches: settings a step's cost does not depend on
    "lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True},
    "positive_share": {"low": 0.5, "high": 0.95},
    "weight_decay": {"low": 1.0e-5, "high": 1.0e-2, "log": True},
}
WEIGHTS = "detector.pt"
CONFIG = "config.json"
BACKBONES = ("resnet50_fpn_v2", "mobilenet_v3_large_fpn")


@register("faster-rcnn")
class FasterRCNNSlices(Architecture):
    """torchvision's Faster R-CNN on 2.5D z-slices, its per-slice boxes merged into 3D picks."""

    kind = "2d-detector"
    defaults = DEFAULTS
    search_space = SEARCH_SPACE

    @classmethod
    def check_config(cls, config: dict) -> None:
        """Unknown options (as every plug-in) and schedule options out of range: before any job runs."""
        super().check_config(config)
        check_schedule(config, "faster-rcnn")

    def __init__(self, config, particles, device, seed):
        super().__init__(config, particles, device, seed)
        self.optimisation: Optimisation | None = None  # set by fit
        if self.config["backbone"] not in BACKBONES:
            raise BenchError(f"faster-rcnn: backbone '{self.config['backbone']}' is one of {', '.join(BACKBONES)}")
        self.spec = SliceSpec(
            self.config["level"], tuple(self.config["percentiles"]), self.config["neighbours"], channels=3
        )
        self.statistics: tuple[float, float] = (0.5, 0.25)  # the training slices' mean and std, set by fit
        self.shape: tuple[int, int] | None = None  # slice (y, x) size the detector is built for, set by fit
        self.pixel = 0.0  # Å per slice pixel, set by fit
        self.network: FasterRCNN | None = None

    def fit(self, train: Sequence[Sample], val: Sequence[Sample], budget: Budget, tracker: Tracker) -> None:
        """Train on slices of the train runs: `positive_share` of them hold a particle, all are augmented; the schedule
        is sized to the budget's epoch bound."""
        c = self.config
        sampler = SliceSampler(train, self.particles, self.spec, c, self.seed)
        self.statistics, self.shape = sampler.statistics, sampler.shape
        self.pixel = train[0].tomogram.level_voxel_size(self.spec.level)
        self.network = self._build()
        self.optimisation = Optimisation(self.network, self._optimiser(), c, budget, c["steps_per_epoch"])
        unit = "x".join(map(str, self.shape)) + " slices"
        for _ in tracker.epochs(samples=c["steps_per_epoch"] * c["batch_size"], unit=unit):
            self.network.train()  # again after a learning-curve point's predictions
            total, steps = torch.zeros((), device=self.device), 0
            for _ in range(c["steps_per_epoch"]):
                if tracker.exhausted():
                    break
                with tracker.waiting():
                    images, targets = sampler.batch(c["batch_size"], self.device)
                total += self.training_step(images, targets, self.optimisation)
                steps += 1
            tracker.log(loss=total.item() / steps if steps else float("nan"))  # the epoch's one host sync
        self.optimisation.finish()
        self.network.eval()

    def interim(self) -> AbstractContextManager[None]:
        """`predict` on the detector trained so far (its weight average, when there is one), mid-`fit`."""
        return self.optimisation.predicting()

    def training_step(
        self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]], optimisation: Optimisation
    ) -> torch.Tensor:
        """One optimisation step on a batch of slices and their boxes; returns the loss, detached, on the device."""
        loss = sum(self.network(images, targets).values())
        optimisation.step(loss)
        return loss.detach()

    def predict(self, tomogram: Tomogram) -> pd.DataFrame:
        """Detect on every slice in batches, then merge the detections of each type across slices into 3D picks."""
        c = self.config
        volume = normalised_volume(tomogram, self.spec)
        network = self._network_for(volume.shape[1:])

        def detect(images: np.ndarray) -> list[SliceBoxes]:
            outputs = network(list(to_device(images, self.device)))
            return [tuple(o[key].cpu().numpy() for key in ("boxes", "labels", "scores")) for o in outputs]

        with torch.inference_mode():
            detections = detect_slices(volume, self.spec, c["predict_batch"], detect, self.particles)
        return picks_from_detections(
            detections, tomogram, self.particles, self.spec.level, c["merge_xy"], c["merge_z"], c["z_fraction"]
        )

    def save(self, directory: Path) -> None:
        """Write the detector's weights and the config with the slice statistics and size it was trained on."""
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network.state_dict(), directory / WEIGHTS)
        state = {
            "config": self.config,
            "statistics": list(self.statistics),
            "shape": list(self.shape),
            "pixel": self.pixel,
        }
        (directory / CONFIG).write_text(json.dumps(state, indent=2))

    def load(self, directory: Path) -> None:
        """Rebuild the detector from the saved config and restore its weights."""
        state = json.loads((directory / CONFIG).read_text())
        self.config, self.statistics, self.shape = state["config"], tuple(state["statistics"]), tuple(state["shape"])
        self.pixel = state["pixel"]
        self.network = self._build()
        self.network.load_state_dict(torch.load(directory / WEIGHTS, map_location=self.device, weights_only=True))
        self.network.eval()

    def anchor_sizes(self) -> tuple[float, ...]:
        """Square anchor sides (slice pixels) spanning the particles' boxes: the smallest target cross-section to
        the largest diameter, geometrically spaced."""
        radii = np.array([p.radius for p in self.particles]) / self.pixel
        smallest = 2 * radii.min() * np.sqrt(1 - self.config["z_fraction"] ** 2)
        return tuple(float(s) for s in np.geomspace(smallest, 2 * radii.max(), self.config["anchor_sizes"]))

    def _build(self) -> FasterRCNN:
        """The detector for the slice size, its weights drawn from the architecture's seed (or the pretrained ones)."""
        c = self.config
        height, width = self.shape
        mean, std = self.statistics
        options = {
            "min_size": min(height, width),
            "max_size": max(height, width),
            "image_mean": [mean] * 3,
            "image_std": [std] * 3,
            "rpn_pre_nms_top_n_train": c["proposals"][0],
            "rpn_post_nms_top_n_train": c["proposals"][1],
            "rpn_pre_nms_top_n_test": c["proposals"][0],
            "rpn_post_nms_top_n_test": c["proposals"][1],
            "box_batch_size_per_image": c["roi_batch"],
            "box_score_thresh": c["score_thresh"],
            "box_detections_per_img": c["detections_per_slice"],
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            network = self._detector(class_count(self.particles), options)
        if c["pretrained"]:
            network.load_state_dict(torch.load(c["pretrained"], map_location="cpu", weights_only=True))
        network.backbone.forward = self._mixed(network.backbone.forward)
        return network.to(self.device)

    def _mixed(self, forward: Callable) -> Callable:
        """The backbone's forward in the suite's precision, its features handed on in float32.

        Only the backbone (and FPN), nearly all of the detector's arithmetic, runs under autocast: under autocast
        torchvision's box coder would cast anchors and proposals to the heads' bf16, which rounds them to 2-4 pixels
        on 630-pixel slices (an apo-ferritin box is about 12), so the RPN and box heads and their losses stay fp32.
        """

        def mixed(images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
            with autocast(self.device, self.precision):
                features = forward(images)
            return OrderedDict((name, value.float()) for name, value in features.items())

        return mixed

    def _detector(self, classes: int, options: dict) -> FasterRCNN:
        """torchvision's Faster R-CNN with the configured backbone and the particles' anchors, untrained.

        ResNet-50-FPN v2 comes from torchvision's builder, which fixes its own anchors: its anchor generator and the
        RPN head sized for it are then replaced by the particles' (a two-convolution head, as the builder's).
        """
        if self.config["backbone"] == "resnet50_fpn_v2":
            network = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=classes, **options)
            anchors = self._anchors(5)
            network.rpn.anchor_generator = anchors
            network.rpn.head = RPNHead(
                network.backbone.out_channels, anchors.num_anchors_per_location()[0], conv_depth=2
            )
            return network
        backbone = mobilenet_backbone(
            backbone_name="mobilenet_v3_large",
            weights=None,
            fpn=True,
            norm_layer=nn.BatchNorm2d,
            trainable_layers=6,
            returned_layers=self.config["feature_levels"],
        )
        levels = len(self.config["feature_levels"]) + 1  # the FPN adds a pooled level
        pool = MultiScaleRoIAlign(featmap_names=[str(i) for i in range(levels - 1)], output_size=7, sampling_ratio=2)
        return FasterRCNN(backbone, classes, rpn_anchor_generator=self._anchors(levels), box_roi_pool=pool, **options)

    def _anchors(self, levels: int) -> AnchorGenerator:
        """The particles' square anchors, the same sizes on each of `levels` feature levels."""
        return AnchorGenerator((self.anchor_sizes(),) * levels, ((1.0,),) * levels)

    def _network_for(self, shape: tuple[int, int]) -> FasterRCNN:
        """The detector, told the size of these slices (odd-sized volumes differ by a pixel from the training ones)."""
        self.network.transform.min_size = (min(shape),)
        self.network.transform.max_size = max(shape)
        return self.network

    def _optimiser(self) -> torch.optim.Optimizer:
        """AdamW, or SGD with momentum 0.9 (torchvision's detection recipe)."""
        c = self.config
        parameters = [p for p in self.network.parameters() if p.requires_grad]
        if c["optimizer"] == "sgd":
            return torch.optim.SGD(parameters, lr=c["lr"], momentum=0.9, weight_decay=c["weight_decay"])
        if c["optimizer"] == "adamw":
            return torch.optim.AdamW(parameters, lr=c["lr"], weight_decay=c["weight_decay"])
        raise BenchError(f"faster-rcnn: optimizer '{c['optimizer']}' is adamw or sgd")


class SliceSampler:
    """Training slices with their box targets: normalised volumes and boxes of every train run, held in memory."""

    def __init__(self, samples: Sequence[Sample], particles, spec: SliceSpec, config: dict, seed: int):
        self.spec, self.share = spec, config["positive_share"]
        self.volumes = [normalised_volume(s.tomogram, spec) for s in samples]
        self.boxes = [
            box_targets(s.picks, particles, s.tomogram, spec.level, config["z_fraction"], config["box"])
            for s in samples
        ]
        shapes = {v.shape[1:] for v in self.volumes}
        if len(shapes) != 1:
            raise BenchError(f"faster-rcnn: the train runs' slices differ in size ({sorted(shapes)}); crop them alike")
        self.shape = shapes.pop()
        values = np.concatenate([v[:: max(1, v.shape[0] // 16)].ravel() for v in self.volumes])
        self.statistics = (float(values.mean()), float(values.std()) or 1.0)
        self.positives = [(i, z) for i, b in enumerate(self.boxes) for z in np.unique(b["z"])]
        self.rng = np.random.default_rng(seed)

    def batch(self, count: int, device: str) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
        """`count` augmented slices (3, y, x) and their targets (boxes, labels), as torchvision takes them."""
        images, targets = [], []
        for _ in range(count):
            if self.positives and self.rng.random() < self.share:
                index, z = self.positives[self.rng.integers(len(self.positives))]
            else:
                index = int(self.rng.integers(len(self.volumes)))
                z = int(self.rng.integers(self.volumes[index].shape[0]))
            rows = self.boxes[index][self.boxes[index]["z"] == z]
            image = slice_images(self.volumes[index], np.array([z]), self.spec)[0]
            image, boxes = augment_slice(image, rows[["x1", "y1", "x2", "y2"]].to_numpy(), self.rng)
            images.append(to_device(image, device))
            targets.append(
                {
                    "boxes": to_device(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), device),
                    "labels": to_device(rows["label"].to_numpy(dtype=np.int64), device),
                }
            )
        return images, targets
