"""Real face photos available offline, for tests, benchmarks and the README.

- bundled in pip packages already installed: scikit-image's ``astronaut``
  (Eileen Collins) and matplotlib's ``grace_hopper.jpg``;
- several real photos of one person: ``obama.jpg``, ``obama2.jpg`` and
  ``obama3.jpg`` (three different White House shots) and ``biden.jpg``, the
  test images of the PyPI sdist ``face_recognition`` 1.3.0 (MIT), fetched
  once with ``pip download`` (the index pip is configured with) and cached;
- the six group photos of face-api's demo (``demo/sample1-6.jpg``, 22 faces,
  different people within a photo), from the npm package
  ``@vladmandic/face-api`` 1.7.15 (MIT), fetched once by
  ``pipelines.face_api_package`` and cached.

``face_api_photos`` raises ``FaceApiUnavailable`` and ``person_photos``
``PhotosUnavailable``, both with one line saying why (the registry or index
unreachable, bad bytes), so a caller can skip or report.

Example:
    >>> photos = bundled_photos()                    # {"astronaut": Path, "grace_hopper": Path}
    >>> group = face_api_photos()                    # [Path(".../sample1.jpg"), ...]
    >>> person_photos()["obama2"]                    # Path(".../face_recognition-1.3.0/obama2.jpg")
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from pipelines.face_api_package import cache_dir, face_api_files

FACE_API_SAMPLES = tuple(f"demo/sample{i}.jpg" for i in range(1, 7))
FACE_RECOGNITION = "face_recognition==1.3.0"
FACE_RECOGNITION_SDIST_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
PERSON_PHOTOS = ("obama", "obama2", "obama3", "biden")


class PhotosUnavailable(OSError):
    """The photos cannot be fetched here; the message says why and what to do."""


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


def person_photos(timeout_s: float = 300.0) -> dict[str, Path]:
    """Real photos from face_recognition's sdist, by stem: three shots of Barack Obama and one of Joe Biden."""
    target = cache_dir() / "face_recognition-1.3.0"
    paths = {name: target / f"{name}.jpg" for name in PERSON_PHOTOS}
    if all(p.is_file() for p in paths.values()):
        return paths
    fix = f"fetch the sdist of {FACE_RECOGNITION} elsewhere and copy tests/test_images/{{obama,obama2,obama3,biden}}.jpg into {target}"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", FACE_RECOGNITION, "--no-deps", "--no-binary", ":all:",
                   "--quiet", "--dest", tmp]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise PhotosUnavailable(f"`pip download {FACE_RECOGNITION}` took over {timeout_s:.0f} s; {fix}") from None
        sdists = list(Path(tmp).glob("face_recognition-1.3.0.tar.gz"))
        if done.returncode != 0 or not sdists:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise PhotosUnavailable(f"`pip download {FACE_RECOGNITION}` failed ({last}); {fix}")
        if hashlib.sha256(sdists[0].read_bytes()).hexdigest() != FACE_RECOGNITION_SDIST_SHA256:
            raise PhotosUnavailable(f"the sdist of {FACE_RECOGNITION} did not have the expected bytes (SHA-256 mismatch); {fix}")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdists[0]) as tar:
            for name, path in paths.items():
                data = tar.extractfile(tar.getmember(f"face_recognition-1.3.0/tests/test_images/{name}.jpg")).read()
                part = path.with_name(f".{path.name}.part")
                part.write_bytes(data)
                os.replace(part, path)
    return paths
