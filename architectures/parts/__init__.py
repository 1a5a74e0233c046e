"""Building blocks shared by plug-ins (timm's `layers/` beside its `models/`): 3D targets, patches and tiled
inference (`volumes`), peak finding (`peaks`), 2D slices and box targets (`slices`), and the merge of per-slice
detections into 3D picks (`merge`). The harness core (`benchmark/`) never needs them."""
