"""Shape measures on (soft) masks."""
from .boxes import box_iou, mask_boxes
from .curvature import boundary_curvature, curvature_map, gaussian_blur

__all__ = ["boundary_curvature", "box_iou", "curvature_map", "gaussian_blur", "mask_boxes"]
