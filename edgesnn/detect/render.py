"""Drawing detections on accumulated event frames (Pillow, from the ``events`` extra)."""

from __future__ import annotations

import numpy as np

from edgesnn.errors import MissingDependencyError

#: Box colours by class index (cycled): orange, green, magenta, yellow.
CLASS_COLOURS = ((255, 140, 0), (0, 220, 90), (230, 60, 230), (240, 230, 60))
_ON, _OFF = (255, 255, 255), (60, 120, 255)


def _pil():
    try:
        from PIL import Image, ImageDraw
    except ImportError as exc:
        raise MissingDependencyError("rendering needs Pillow: pip install 'edgesnn[events]'", path="--render") from exc
    return Image, ImageDraw


def draw_window(events: np.ndarray, boxes: np.ndarray, *, width: int, height: int, classes: tuple[str, ...]):
    """An RGB image of one window: pixels with more ON (white) or OFF (blue) events, boxes labelled by class."""
    Image, ImageDraw = _pil()
    net = np.zeros(height * width, np.int64)
    if len(events):
        pix = events["y"].astype(np.int64) * width + events["x"]
        net = np.bincount(pix, weights=np.where(events["p"] > 0, 1, -1), minlength=height * width)
    rgb = np.zeros((height * width, 3), np.uint8)
    rgb[net > 0] = _ON
    rgb[net < 0] = _OFF
    img = Image.fromarray(rgb.reshape(height, width, 3), "RGB")
    draw = ImageDraw.Draw(img)
    for b in boxes:
        colour = CLASS_COLOURS[int(b["class_id"]) % len(CLASS_COLOURS)]
        x0, y0 = float(b["x"]), float(b["y"])
        draw.rectangle([x0, y0, x0 + float(b["w"]), y0 + float(b["h"])], outline=colour)
        name = classes[int(b["class_id"])] if 0 <= int(b["class_id"]) < len(classes) else str(int(b["class_id"]))
        draw.text((x0 + 1, max(0.0, y0 - 10)), f"{name} {float(b['score']):.2f}", fill=colour)
    return img


def save_gif(frames: list, path: str, *, frame_ms: int) -> None:
    """Write frames as a looping animated GIF."""
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=max(20, frame_ms), loop=0)
