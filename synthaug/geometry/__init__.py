"""Shape measures on (soft) masks."""
from .boxes import box_iou, mask_boxes
from .curvature import boundary_curvature, curvature_map

__all__ = ["boundary_curvature", "box_iou", "curvature_map", "mask_boxes"]
