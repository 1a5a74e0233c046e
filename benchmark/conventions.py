"""The CZII conventions the data layer, the synthetic dataset and the CLI default to (light: no heavy imports)."""

CZII_VOXEL_SIZE = 10.012  # Å, the true voxel size (the folders say VoxelSpacing10.000)
DEFAULT_TOMO_TYPE = "denoised"
GROUND_TRUTH = ("curation", "0")  # (user_id, session_id) of the curated picks
VOXEL_TOLERANCE = 0.01  # relative: voxel spacings match within 1%
