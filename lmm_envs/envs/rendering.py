"""``rgb_array`` frames, drawn with numpy alone: the audio window above, the score window below, and markers
for the agent's position (red) and the true position (green)."""

from __future__ import annotations

import numpy as np

_MAGMA = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                   [250, 193, 39], [252, 253, 191]], dtype=np.float64)
AGENT_COLOUR = np.array([230, 40, 40], dtype=np.uint8)
TRUTH_COLOUR = np.array([40, 220, 90], dtype=np.uint8)


def colormap(values: np.ndarray, vmax: float) -> np.ndarray:
    """Map an array to RGB with a magma-like ramp (values clipped to [0, vmax])."""
    x = np.clip(values / max(vmax, 1e-9), 0.0, 1.0) * (len(_MAGMA) - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, len(_MAGMA) - 1)
    frac = (x - lo)[..., None]
    return (_MAGMA[lo] * (1 - frac) + _MAGMA[hi] * frac).astype(np.uint8)


def upscale(image: np.ndarray, sy: int, sx: int) -> np.ndarray:
    return np.repeat(np.repeat(image, sy, axis=0), sx, axis=1)


def panel(window: np.ndarray, vmax: float, scale: tuple[int, int]) -> np.ndarray:
    """A (rows, cols) window drawn with low rows at the bottom."""
    return upscale(colormap(window[::-1], vmax), *scale)


def mark_column(image: np.ndarray, col: float, colour: np.ndarray, width: int = 2) -> None:
    c = int(round(col))
    if -width < c < image.shape[1]:
        image[:, max(c - width // 2, 0):max(c - width // 2, 0) + width] = colour


def compose(panels: list[np.ndarray], gap: int = 4) -> np.ndarray:
    width = max(p.shape[1] for p in panels)
    rows = []
    for i, p in enumerate(panels):
        if p.shape[1] < width:
            p = np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)))
        rows.append(p)
        if i < len(panels) - 1:
            rows.append(np.full((gap, width, 3), 255, dtype=np.uint8))
    return np.ascontiguousarray(np.concatenate(rows, axis=0))
