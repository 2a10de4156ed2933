"""Real face photos available offline, for tests, benchmarks and the README.

- bundled in pip packages already installed: scikit-image's ``astronaut``
  (Eileen Collins) and matplotlib's ``grace_hopper.jpg``;
- the six group photos of face-api's demo (``demo/sample1-6.jpg``, 22 faces,
  different people within a photo), from the npm package
  ``@vladmandic/face-api`` 1.7.15 (MIT), fetched once by
  ``pipelines.face_api_package`` and cached.

``face_api_photos`` raises ``FaceApiUnavailable`` with one line saying why
(the registry unreachable, bad bytes) so a caller can skip or report.

Example:
    >>> photos = bundled_photos()                    # {"astronaut": Path, "grace_hopper": Path}
    >>> group = face_api_photos()                    # [Path(".../sample1.jpg"), ...]
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.face_api_package import cache_dir, face_api_files

FACE_API_SAMPLES = tuple(f"demo/sample{i}.jpg" for i in range(1, 7))


def bundled_photos(folder: str | os.PathLike | None = None) -> dict[str, Path]:
    """The face photos shipped in installed packages, as files (astronaut written as PNG into ``folder``)."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    folder = Path(folder) if folder else cache_dir() / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = folder / "astronaut.png"
    if not astronaut.is_file():
        Image.fromarray(skimage.data.astronaut()).save(astronaut)
    return {"astronaut": astronaut, "grace_hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))}


def face_api_photos(timeout_s: float = 180.0) -> list[Path]:
    """face-api's six demo group photos (22 faces), fetched on first use and cached."""
    return face_api_files(FACE_API_SAMPLES, timeout_s)
