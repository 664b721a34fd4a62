"""My digits as an MNIST-format data set (mnist_core/digitset.py): the zip torchvision reads, the jsonl that
restores them, and the uploads it refuses with one line."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
import torchvision

from mnist_core import digitset, teach
from mnist_core.digitset import DigitSetError, from_upload, to_zip
from mnist_core.raster import prepare_strokes
from tests import handwriting


@pytest.fixture(scope="module")
def mine() -> list[dict]:
    return teach.validate_drawings(handwriting.drawings("boxy", 3, seed=3) + handwriting.drawings("plain", 1, seed=3))


def unpack(data: bytes, where) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        z.extractall(where)


def page_28x28(strokes: dict) -> np.ndarray:
    """What the page (and /classify_strokes) makes of a drawing: raster.py's image, as uint8."""
    return np.round(prepare_strokes(json.dumps(strokes)).image * 255).astype(np.uint8)


def test_the_zip_loads_with_torchvision_and_holds_the_pages_images(mine, tmp_path):
    held = teach.held_indices(mine)
    assert held and len(held) < len(mine)
    unpack(to_zip(mine, held), tmp_path)
    train = torchvision.datasets.MNIST(str(tmp_path), train=True, download=False)
    test = torchvision.datasets.MNIST(str(tmp_path), train=False, download=False)
    taught = [d for i, d in enumerate(mine) if i not in held]
    aside = [mine[i] for i in held]
    for ds, part in ((train, taught), (test, aside)):
        assert len(ds) == len(part) and ds.data.dtype == torch.uint8 and ds.data.shape[1:] == (28, 28)
        assert ds.targets.tolist() == [d["label"] for d in part]
        for img, d in zip(ds.data.numpy(), part, strict=True):
            assert np.array_equal(img, page_28x28(d["strokes"]))
    assert (tmp_path / "strokes.jsonl").is_file()


def test_the_default_split_is_the_teachs_and_never_empty(mine, tmp_path):
    assert to_zip(mine) == to_zip(mine, teach.held_indices(mine))       # and the same bytes every time
    two = teach.validate_drawings(handwriting.drawings("plain", 2, seed=1, digits=[4]))
    unpack(to_zip(two), tmp_path)                                       # 2 of a digit: none held, so the last
    assert len(torchvision.datasets.MNIST(str(tmp_path), train=False, download=False)) == 1
    with pytest.raises(DigitSetError, match="held aside and one taught"):
        to_zip(two, [])
    with pytest.raises(DigitSetError, match="held-aside index"):
        to_zip(two, [5])


def test_zip_and_jsonl_round_trip(mine, tmp_path):
    data = to_zip(mine)
    assert from_upload(data) == mine
    path = tmp_path / "my-digits.zip"
    path.write_bytes(data)
    assert from_upload(path) == mine
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        jsonl = z.read("strokes.jsonl")
    lines = [json.loads(x) for x in jsonl.decode().splitlines()]
    assert [set(x) for x in lines] == [{"strokes", "label"}] * len(mine)
    assert from_upload(jsonl) == mine
    (tmp_path / "strokes.jsonl").write_bytes(jsonl)
    assert from_upload(str(tmp_path / "strokes.jsonl")) == mine
    # drawings as the browser keeps them (JSON text strokes, extra keys) come back as the same drawings
    raw = [{"strokes": json.dumps(d["strokes"]), "label": str(d["label"]), "id": i} for i, d in enumerate(mine)]
    assert to_zip(raw) == data


def zip_of(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


def line(strokes, label) -> str:
    return json.dumps({"strokes": strokes, "label": label})


def bad_uploads(mine) -> dict:
    good = line(mine[0]["strokes"], 1)
    many = "\n".join([good] * (teach.MAX_DRAWINGS + 1)).encode()
    return {
        "too large": (b"x" * (digitset.MAX_UPLOAD_BYTES + 1), "too large"),
        "empty": (b"", "empty"),
        "wrong label": ((good + "\n" + line(mine[1]["strokes"], 12)).encode(), "drawing 2: the label must be"),
        "label not a number": (line(mine[1]["strokes"], None).encode(), "drawing 1: the label must be"),
        "malformed strokes": (line({"width": 320, "strokes": [[["a", 1]]]}, 3).encode(),
                              "drawing 1: a coordinate must be a number"),
        "point far outside": (line({"strokes": [[[5000, 1], [1, 1]]]}, 3).encode(), "far outside"),
        "nothing drawn": (line({"strokes": []}, 3).encode(), "drawing 1: nothing drawn"),
        "not json": (b"{not json\n", "line 1 of strokes.jsonl is not valid JSON"),
        "not utf-8": (b"\xff\xfe\x00", "not UTF-8"),
        "too many drawings": (many, "too many drawings"),
        "no drawings": (b"\n\n", "no drawings"),
        "zip bomb": (zip_of({"strokes.jsonl": b" " * (digitset.MAX_JSONL_BYTES + 10)}), "too large unpacked"),
        "packed too tightly": (zip_of({"strokes.jsonl": (good + "\n").encode() + b" " * 2_000_000}), "zip bomb"),
        "zip without jsonl": (zip_of({"MNIST/raw/train-images-idx3-ubyte": b"\0" * 20}), "must hold one strokes.jsonl"),
        "two jsonl": (zip_of({"a/strokes.jsonl": good.encode(), "b/strokes.jsonl": good.encode()}), "it has 2"),
        "unsafe name": (zip_of({"../strokes.jsonl": good.encode()}), "unsafe name"),
        "too many members": (zip_of({f"f{i}": b"" for i in range(digitset.MAX_MEMBERS + 1)}), "too many files"),
        "damaged zip": (b"PK\x03\x04" + b"\0" * 100, "not a readable zip"),
    }


CASES = ["too large", "empty", "wrong label", "label not a number", "malformed strokes", "point far outside",
         "nothing drawn", "not json", "not utf-8", "too many drawings", "no drawings", "zip bomb",
         "packed too tightly", "zip without jsonl", "two jsonl", "unsafe name", "too many members", "damaged zip"]


@pytest.mark.parametrize("case", CASES)
def test_bad_uploads_get_one_line_and_nothing(mine, tmp_path, case):
    data, words = bad_uploads(mine)[case]
    for upload in (data, tmp_path / "upload.bin"):
        (tmp_path / "upload.bin").write_bytes(data)
        with pytest.raises(DigitSetError) as e:
            from_upload(upload)
        msg = str(e.value)
        assert words in msg and "\n" not in msg and len(msg) < 200, msg


def test_a_zip_lying_about_its_size_cannot_inflate(monkeypatch):
    """A member whose header says it is small but that unpacks huge (zipfile itself stops at the declared
    size; here a reader that would not): the bounded read stops it, one line, no huge string kept."""
    data = zip_of({"strokes.jsonl": b" " * 3_000_000})
    with pytest.raises(DigitSetError, match="zip bomb"):                 # the honest header: refused unread
        from_upload(data)
    real_infolist, real_open = zipfile.ZipFile.infolist, zipfile.ZipFile.open

    def lying_infolist(self):
        infos = real_infolist(self)
        for i in infos:
            i.file_size = 100_000
        return infos

    def lying_open(self, info, *a, **kw):
        f = real_open(self, info, *a, **kw)
        f._left = 10**9                                          # and the stream goes on past it
        return f

    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying_infolist)
    monkeypatch.setattr(zipfile.ZipFile, "open", lying_open)
    monkeypatch.setattr(digitset, "MAX_JSONL_BYTES", 1_000_000)
    with pytest.raises(DigitSetError, match="unpacks to more than its zip entry says"):
        from_upload(data)


def test_idx_bytes_is_mnists_format(tmp_path):
    from mnist_core.data import read_idx
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "x").write_bytes(digitset.idx_bytes(arr))
    assert np.array_equal(read_idx(tmp_path / "x", 0x803, (28, 28)), arr)
