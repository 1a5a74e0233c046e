"""Building blocks shared by plug-ins (timm's `layers/` beside its `models/`): 3D targets, device-held patches and
tiled inference (`volumes`), the patch networks' common training, inference and weights (`patch_network`) and the
3D segmenters' kind of them (`segmenter`), mixed precision and host-to-device copies (`device`), peak finding
(`peaks`), 2D slices and box targets (`slices`), the merge of per-slice detections into 3D picks (`merge`), and the
weighted vote of several models' candidates (`fusion`). The harness core (`benchmark/`) never needs them."""
