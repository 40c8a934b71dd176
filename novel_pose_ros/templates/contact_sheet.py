"""A contact sheet: every template view's network crop in one labelled PNG."""
from __future__ import annotations

import math

import cv2
import numpy as np

from novel_pose_ros.geometry.crop import warp_crop
from novel_pose_ros.templates.store import TemplateSet


def contact_sheet(templates: TemplateSet, thumb_px: int = 112, columns: int = 7) -> np.ndarray:
    """(H, W, 3) uint8 RGB grid of the crops, each labelled with its view index."""
    rows = math.ceil(len(templates) / columns)
    title_px = 28
    sheet = np.full((title_px + rows * thumb_px, columns * thumb_px, 3), 40, dtype=np.uint8)
    cv2.putText(sheet, f"{templates.object_name}: {len(templates)} views (level {templates.level})",
                (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    for i, view in enumerate(templates.views):
        crop = warp_crop(view.rgb, view.M_crop_img, templates.crop_size_px)
        thumb = cv2.resize(crop, (thumb_px, thumb_px), interpolation=cv2.INTER_AREA)
        r, c = divmod(i, columns)
        y, x = title_px + r * thumb_px, c * thumb_px
        sheet[y:y + thumb_px, x:x + thumb_px] = thumb
        cv2.rectangle(sheet, (x, y), (x + thumb_px - 1, y + thumb_px - 1), (90, 90, 90), 1)
        cv2.putText(sheet, str(view.view_id), (x + 4, y + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1, cv2.LINE_AA)
    return sheet
