"""Building blocks shared by plug-ins (timm's `layers/` beside its `models/`): 3D targets, patches and tiled
inference (`volumes`), the 3D segmenters' common training, inference and weights (`segmenter`), peak finding
(`peaks`), 2D slices and box targets (`slices`), the merge of per-slice detections into 3D picks (`merge`), and the
weighted vote of several models' candidates (`fusion`). The harness core (`benchmark/`) never needs them."""
