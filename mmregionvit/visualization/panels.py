"""Pictures that read at a glance: label maps painted over the image, a
title above a picture, and a legend of class colours (RGB arrays)."""
from typing import List, Optional, Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
BAR = 18  # height of a title bar or a legend row, in pixels


def paint_labels(image: np.ndarray,
                 labels: np.ndarray,
                 palette: Sequence[Sequence[int]],
                 skip: Sequence[int] = (),
                 alpha: float = 0.6,
                 outline: Optional[Sequence[int]] = None) -> np.ndarray:
    """``image`` with each pixel of class ``c`` (``labels``, H x W) blended
    with ``palette[c]``, each region outlined in ``outline`` if given;
    classes in ``skip`` and labels outside the palette (ignored pixels)
    leave the image as it is."""
    out = image.copy()
    for c, colour in enumerate(palette):
        if c in skip:
            continue
        where = labels == c
        out[where] = ((1 - alpha) * image[where] +
                      alpha * np.asarray(colour)).astype(image.dtype)
        if outline is not None:
            contours, _ = cv2.findContours(
                where.astype(np.uint8), cv2.RETR_EXTERNAL,
                cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, tuple(int(v) for v in outline),
                             1)
    return out


def titled(image: np.ndarray, title: str) -> np.ndarray:
    """``image`` under a white bar with ``title`` in it."""
    bar = np.full((BAR, image.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (4, BAR - 5), FONT, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def legend(names: Sequence[str], colours: Sequence[Sequence[int]],
           width: int) -> np.ndarray:
    """A white strip ``width`` pixels wide: a swatch of each colour and its
    name, as many to a row as fit."""
    swatch, gap = BAR - 6, 4  # the square, and the space after it
    entries: List[tuple] = []
    x, row = gap, 0
    for name, colour in zip(names, colours):
        text = cv2.getTextSize(name, FONT, 0.45, 1)[0][0]
        size = swatch + gap + text + 3 * gap
        if x > gap and x + size > width:
            x, row = gap, row + 1
        entries.append((x, row, name, colour))
        x += size
    strip = np.full((BAR * (row + 1), width, 3), 255, np.uint8)
    for x, row, name, colour in entries:
        top = row * BAR + 3
        cv2.rectangle(strip, (x, top), (x + swatch - 1, top + swatch - 1),
                      tuple(int(v) for v in colour), -1)
        cv2.putText(strip, name, (x + swatch + gap, top + swatch - 2), FONT,
                    0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip
