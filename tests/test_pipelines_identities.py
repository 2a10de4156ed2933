"""Identity folders on real face photos (skimage's LFW subset crops)."""

import numpy as np
import pytest
from skimage import data

from pipelines.identities import identity_dataset, identity_folder
from pipelines.tfrecord import encode_png


def test_identity_folder_filters_people_and_counts_bad_files(tmp_path):
    root = tmp_path / "people"
    faces = (data.lfw_subset()[:100] * 255).astype(np.uint8)  # 100 real 25x25 faces
    for person, start, count in (("ada", 0, 3), ("bob", 3, 2), ("cy", 5, 1)):
        (root / person).mkdir(parents=True)
        for i in range(count):
            (root / person / f"{i}.png").write_bytes(encode_png(faces[start + i][..., None]))
    (root / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    (tmp_path / "outside.png").write_bytes(encode_png(faces[9][..., None]))
    (root / "ada" / "link.png").symlink_to(tmp_path / "outside.png")  # escapes the root
    people = identity_folder(root, min_images=2)
    assert people.class_names == ["ada", "bob"]
    assert [len(m) for m in people.members] == [3, 2]
    assert people.skipped == {"truncated": 1, "escapes_root": 1, "person_with_too_few_images": 1}
    got = list(identity_dataset(people, channels=1, image_size=(32, 32)).as_numpy_iterator())
    assert [int(label) for _, label in got] == [0, 0, 0, 1, 1]
    assert all(image.shape == (32, 32, 1) for image, _ in got)
    with pytest.raises(ValueError, match="5 or more"):
        identity_folder(root, min_images=5)
