"""Every bad input tried on `distpaint ingest`, `distpaint infer` and `distpaint baseline`,
through the real command line (the console script in a subprocess): each must end with exit
status 2 and exactly one line on stderr that names the file (or the option) and the problem,
never a traceback, and must leave every file and folder exactly as it was (nothing written,
nothing overwritten, inputs byte-identical).

Read-only folders: when the tests run as root (who may write anywhere), the command runs under
`setpriv` without CAP_DAC_OVERRIDE, so the kernel refuses the write as it would for a user.

Run: .venv/bin/python -m pytest tests/test_bad_inputs.py -q
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import stat
import struct
import subprocess
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from distpaint.data.store import MaskStore

ROOT = pathlib.Path(__file__).resolve().parents[1]
DISTPAINT = str(ROOT / ".venv" / "bin" / "distpaint")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from infer_models import tiny_checkpoint_dir

    return tiny_checkpoint_dir(tmp_path_factory.getbasetemp())


# ---- the bad (and good) files ----------------------------------------------------------------
def _mask(shape=(300, 300)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[100:103, :] = True
    m[:, 50:53] = True
    return m


def _png_bytes(mask: np.ndarray) -> bytes:
    return iio.imwrite("<bytes>", mask.astype(np.uint8) * 255, extension=".png")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb(path: pathlib.Path) -> None:
    """A 1 kB PNG whose header claims 200000 x 200000 pixels (40 G)."""
    header = struct.pack(">IIBBBBB", 200_000, 200_000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + _chunk(b"IEND", b""))


def _tiff(path: pathlib.Path, cut: bool, **kw) -> None:
    tifffile.imwrite(path, _mask().astype(np.uint8) * 255, **kw)
    if cut:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


def _store(path: pathlib.Path, broken: str | None = None) -> None:
    store = MaskStore.create(path)
    store.write("a", {"mask": _mask()})
    store.write("b", {"mask": _mask()})
    if broken:
        (path / broken).write_text('{"zarr_format": 3, "node_type": ')


def _damaged_store(path: pathlib.Path, how: str) -> None:
    """A one-sample store whose only shard file has 64 bytes flipped, or is gone."""
    MaskStore.create(path).write("b", {"mask": _mask()})
    shard = path / "b" / "mask" / "c" / "0" / "0"
    if how == "flip":
        data = bytearray(shard.read_bytes())
        mid = len(data) // 2
        data[mid - 32 : mid + 32] = bytes(x ^ 0xFF for x in data[mid - 32 : mid + 32])
        shard.write_bytes(bytes(data))
    else:
        shard.unlink()


def _readonly(path: pathlib.Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)


def _npy(path: pathlib.Path, bad: float, count: int) -> None:
    values = _mask().astype(np.float32)
    values.ravel()[7 : 7 + count] = bad
    np.save(path, values)


MAKE = {
    "good.png": lambda p: p.write_bytes(_png_bytes(_mask())),
    "trunc.png": lambda p: p.write_bytes(_png_bytes(_mask())[:400]),
    "garbage.png": lambda p: p.write_bytes(b"GIF89a, not a PNG at all" * 8),
    "empty.png": lambda p: p.write_bytes(b""),
    "zero.png": lambda p: p.write_bytes(_png_bytes(np.zeros((40, 40), bool))),
    "grey.png": lambda p: iio.imwrite(p, (np.arange(40 * 40).reshape(40, 40) % 5 * 50)
                                      .astype(np.uint8)),
    "colour.png": lambda p: iio.imwrite(p, np.stack([_mask() * 255, _mask() * 0,
                                                     _mask() * 0], -1).astype(np.uint8)),
    "bomb.png": _bomb,
    "mask.jpg": lambda p: p.write_bytes(b"\xff\xd8\xff\xe0jpeg"),
    "trunc_tiled.tif": lambda p: _tiff(p, True, tile=(64, 64), compression="zlib"),
    "trunc_plain.tif": lambda p: _tiff(p, True),
    "nan.npy": lambda p: _npy(p, np.nan, 10),
    "inf.npy": lambda p: _npy(p, np.inf, 3),
    "store.zarr": _store,
    "broken_root.zarr": lambda p: _store(p, "zarr.json"),
    "broken_sample.zarr": lambda p: _store(p, "b/mask/zarr.json"),
    "mask.png": lambda p: p.write_bytes(_png_bytes(_mask())),
    "mäsk.png": lambda p: p.write_bytes(_png_bytes(_mask())),
    "folder/a/m.png": lambda p: p.write_bytes(_png_bytes(_mask())),
    "folder/b/m.tif": lambda p: _tiff(p, False),
    "nomasks/notes.txt": lambda p: p.write_text("no masks here"),
    "ro": _readonly,
    "ro_store.zarr": lambda p: (_store(p), p.chmod(0o555)),
    "broken_group.zarr": lambda p: _store(p, "b/zarr.json"),
    "bad_shard.zarr": lambda p: _damaged_store(p, "flip"),
    "lost_shard.zarr": lambda p: _damaged_store(p, "unlink"),
    "out/store.zarr": lambda p: (_store(p), p.chmod(0o555)),
    "out/store.previews": _readonly,
    ".o.png.distpaint-infer": _readonly,
}


# ---- the cases -------------------------------------------------------------------------------
# (id, files to make, argv, extra environment, the line's regex: a Python regex that must match
# the whole stderr line after "error: ")
CASES = [
    ("ingest-truncated-png", ["trunc.png"], ["ingest", "trunc.png", "--out", "s.zarr"], {},
     r".*/trunc\.png: cannot read as PNG: image file is truncated.*"),
    ("ingest-truncated-tiled-tiff", ["trunc_tiled.tif"],
     ["ingest", "trunc_tiled.tif", "--out", "s.zarr"], {},
     r".*/trunc_tiled\.tif: truncated TIFF: the file has [\d,]+ bytes, its image data runs to "
     r"byte [\d,]+"),
    ("ingest-truncated-plain-tiff", ["trunc_plain.tif"],
     ["ingest", "trunc_plain.tif", "--out", "s.zarr"], {},
     r".*/trunc_plain\.tif: truncated TIFF: the file has 45,\d\d\d bytes, its image data runs "
     r"to byte 90,\d\d\d"),
    ("ingest-not-a-png", ["garbage.png"], ["ingest", "garbage.png", "--out", "s.zarr"], {},
     r".*/garbage\.png: not a PNG file \(no PNG signature\)"),
    ("ingest-empty-file", ["empty.png"], ["ingest", "empty.png", "--out", "s.zarr"], {},
     r".*/empty\.png: empty file \(0 bytes\)"),
    ("ingest-all-background", ["zero.png"], ["ingest", "zero.png", "--out", "s.zarr"], {},
     r".*/zero\.png: empty mask \(every pixel is 0\); nothing to ingest"),
    ("ingest-grey-without-threshold", ["grey.png"], ["ingest", "grey.png", "--out", "s.zarr"],
     {}, r".*/grey\.png: not a binary mask, values found: 0, 50, 100, 150, 200; pass a "
         r"threshold \(--threshold T\).*"),
    ("ingest-colour", ["colour.png"], ["ingest", "colour.png", "--out", "s.zarr"], {},
     r".*/colour\.png: a colour image \(channels differ\).*"),
    ("ingest-unsupported-suffix", ["mask.jpg"], ["ingest", "mask.jpg", "--out", "s.zarr"], {},
     r".*/mask\.jpg: unsupported file type '\.jpg'; use one of .*"),
    ("ingest-missing-file", [], ["ingest", "missing.png", "--out", "s.zarr"], {},
     r"missing\.png: no such file or directory"),
    ("ingest-glob-matches-nothing", [], ["ingest", "scans/*.png", "--out", "s.zarr"], {},
     r"scans/\*\.png: no file matches this pattern"),
    ("ingest-folder-without-masks", ["nomasks/notes.txt"],
     ["ingest", "nomasks", "--out", "s.zarr"], {},
     r".*/nomasks: no mask files in this directory \(looked for .*\)"),
    ("ingest-names-collide-non-ascii", ["mask.png", "mäsk.png"],
     ["ingest", "mask.png", "mäsk.png", "--out", "s.zarr"], {},
     r".*/mask\.png and .*/mäsk\.png would both become sample 'mask'; rename one .*"),
    ("ingest-names-collide-in-folder", ["folder/a/m.png", "folder/b/m.tif"],
     ["ingest", "folder", "--out", "s.zarr"], {},
     r".*/folder/a/m\.png and .*/folder/b/m\.tif would both become sample 'm'; rename one .*"),
    ("ingest-nan-with-threshold", ["nan.npy"],
     ["ingest", "nan.npy", "--threshold", "0.5", "--out", "s.zarr"], {},
     r".*/nan\.npy: 10 NaN/inf values among 90,000 pixels of float32; a mask needs finite "
     r"values .*"),
    ("ingest-inf-without-threshold", ["inf.npy"], ["ingest", "inf.npy", "--out", "s.zarr"], {},
     r".*/inf\.npy: 3 NaN/inf values among 90,000 pixels of float32; .*"),
    ("ingest-decompression-bomb", ["bomb.png"], ["ingest", "bomb.png", "--out", "s.zarr"], {},
     r".*/bomb\.png: 40,000,000,000 pixels \(200000x200000\) exceeds the limit of "
     r"17,179,869,184 pixels for a PNG .*; if the file is trusted, raise it with "
     r"DISTPAINT_MAX_IMAGE_PIXELS=N"),
    ("ingest-over-a-lowered-pixel-limit", ["good.png"],
     ["ingest", "good.png", "--out", "s.zarr"], {"DISTPAINT_MAX_IMAGE_PIXELS": "1000"},
     r".*/good\.png: 90,000 pixels \(300x300\) exceeds the limit of 1,000 pixels for a PNG .*"),
    ("ingest-bad-pixel-limit-variable", ["good.png"],
     ["ingest", "good.png", "--out", "s.zarr"], {"DISTPAINT_MAX_IMAGE_PIXELS": "lots"},
     r"DISTPAINT_MAX_IMAGE_PIXELS='lots': must be a positive whole number of pixels .*"),
    ("ingest-broken-store-zarr-json", ["broken_root.zarr"],
     ["ingest", "broken_root.zarr", "--out", "s.zarr"], {},
     r".*/broken_root\.zarr/zarr\.json: broken Zarr metadata \(not valid JSON: .*\)"),
    ("ingest-broken-sample-zarr-json", ["broken_sample.zarr"],
     ["ingest", "broken_sample.zarr", "--out", "s.zarr"], {},
     r".*/broken_sample\.zarr/b/mask/zarr\.json: broken Zarr metadata \(not valid JSON: .*\)"),
    ("ingest-read-only-folder", ["good.png", "ro"], ["ingest", "good.png", "--out", "ro/s.zarr"],
     {}, r".*/ro/s\.zarr: cannot write the mask store: the folder .*/ro is not writable "
         r"\(permission denied\)"),
    ("ingest-read-only-store", ["good.png", "ro_store.zarr"],
     ["ingest", "good.png", "--out", "ro_store.zarr"], {},
     r".*/ro_store\.zarr: cannot write the mask store: the folder is not writable "
     r"\(permission denied\)"),
    ("infer-nan-with-input-threshold", ["nan.npy"],
     ["infer", "nan.npy", "--model", "{ckpt}", "--input-threshold", "0.5", "--out", "o.npy"],
     {}, r".*/nan\.npy: 10 NaN/inf values among 90,000 pixels of float32; .*"),
    ("infer-truncated-png", ["trunc.png"],
     ["infer", "trunc.png", "--model", "{ckpt}", "--out", "o.png"], {},
     r".*/trunc\.png: cannot read as PNG: image file is truncated.*"),
    ("infer-broken-store-zarr-json", ["broken_root.zarr"],
     ["infer", "broken_root.zarr", "--model", "{ckpt}", "--out", "o.zarr"], {},
     r".*/broken_root\.zarr/zarr\.json: broken Zarr metadata \(not valid JSON: .*\)"),
    ("infer-broken-sample-zarr-json", ["broken_sample.zarr"],
     ["infer", "broken_sample.zarr", "--model", "{ckpt}", "--out", "o.zarr"], {},
     r".*/broken_sample\.zarr/b/mask/zarr\.json: broken Zarr metadata \(not valid JSON: .*\)"),
    ("infer-read-only-folder", ["good.png", "ro"],
     ["infer", "good.png", "--model", "{ckpt}", "--out", "ro/o.png"], {},
     r".*/ro/o\.png: cannot write the output: the folder .*/ro is not writable "
     r"\(permission denied\)"),
    ("infer-read-only-out-folder", ["good.png", "store.zarr", "ro"],
     ["infer", "good.png", "store.zarr", "--model", "{ckpt}", "--out", "ro"], {},
     r".*/ro: cannot write the output: the folder is not writable \(permission denied\)"),
    ("evaluate-broken-sample-group-zarr-json", ["broken_group.zarr", "store.zarr"],
     ["evaluate", "--pred-store", "broken_group.zarr", "--truth-store", "store.zarr"], {},
     r"(.*/)?broken_group\.zarr/b/zarr\.json: broken Zarr metadata \(not valid JSON: .*\)"),
    ("infer-read-only-output-store-with-overwrite", ["good.png", "store.zarr", "out/store.zarr"],
     ["infer", "store.zarr", "good.png", "--model", "{ckpt}", "--out", "out", "--overwrite"], {},
     r".*/out/store\.zarr: cannot write the output: the folder is not writable "
     r"\(permission denied\)"),
    ("infer-read-only-previews-folder", ["good.png", "store.zarr", "out/store.previews"],
     ["infer", "store.zarr", "good.png", "--model", "{ckpt}", "--out", "out"], {},
     r".*/out/store\.previews/a\.png: cannot write the output: the folder "
     r".*/out/store\.previews is not writable \(permission denied\)"),
    ("infer-read-only-leftover-work-folder", ["good.png", ".o.png.distpaint-infer"],
     ["infer", "good.png", "--model", "{ckpt}", "--out", "o.png"], {},
     r".*/\.o\.png\.distpaint-infer: cannot write the job's work folder: the folder is not "
     r"writable \(permission denied\)"),
    ("baseline-read-only-previews-folder", ["good.png", "store.zarr", "out/store.previews"],
     ["baseline", "closing", "store.zarr", "good.png", "--out", "out"], {},
     r".*/out/store\.previews/a\.png: cannot write the output: the folder "
     r".*/out/store\.previews is not writable \(permission denied\)"),
    ("infer-corrupt-shard", ["bad_shard.zarr"],
     ["infer", "bad_shard.zarr", "--model", "{ckpt}", "--out", "o.zarr"], {},
     r".*/bad_shard\.zarr/b/mask/c/0/0: corrupt shard of sample 'b' \(checksum mismatch: "
     r"the bytes changed on disk\); .*"),
    ("infer-missing-shard", ["lost_shard.zarr"],
     ["infer", "lost_shard.zarr", "--model", "{ckpt}", "--out", "o.zarr"], {},
     r".*/lost_shard\.zarr/b/mask/c/0/0: missing shard of sample 'b': the store recorded it "
     r"as written; .*"),
    ("ingest-corrupt-shard", ["bad_shard.zarr"], ["ingest", "bad_shard.zarr", "--out", "s.zarr"],
     {}, r".*/bad_shard\.zarr/b/mask/c/0/0: corrupt shard of sample 'b' .*"),
    ("baseline-missing-shard", ["lost_shard.zarr"],
     ["baseline", "closing", "lost_shard.zarr", "--out", "o.zarr"], {},
     r"(.*/)?lost_shard\.zarr/b/mask/c/0/0: missing shard of sample 'b': .*"),
    ("baseline-truncated-png", ["trunc.png"],
     ["baseline", "closing", "trunc.png", "--out", "o.png"], {},
     r".*/trunc\.png: cannot read as PNG: image file is truncated.*"),
    ("baseline-truncated-tiff", ["trunc_tiled.tif"],
     ["baseline", "linking", "trunc_tiled.tif", "--out", "o.tif"], {},
     r".*/trunc_tiled\.tif: truncated TIFF: .*"),
    ("baseline-decompression-bomb", ["bomb.png"],
     ["baseline", "closing", "bomb.png", "--out", "o.png"], {},
     r".*/bomb\.png: 40,000,000,000 pixels \(200000x200000\) exceeds the limit of .*"),
    ("baseline-sample-option-with-a-file", ["good.png"],
     ["baseline", "closing", "good.png", "--sample", "a", "--out", "o.png"], {},
     r"--sample picks samples of one mask store written to a \.zarr store .*"),
    ("baseline-nan-with-input-threshold", ["nan.npy"],
     ["baseline", "linking", "nan.npy", "--input-threshold", "0.5", "--out", "o.npy"], {},
     r".*/nan\.npy: 10 NaN/inf values among 90,000 pixels of float32; .*"),
    ("baseline-broken-sample-zarr-json", ["broken_sample.zarr"],
     ["baseline", "closing", "broken_sample.zarr", "--out", "o.zarr"], {},
     r".*/broken_sample\.zarr/b/mask/zarr\.json: broken Zarr metadata \(not valid JSON: .*\)"),
    ("baseline-read-only-folder", ["good.png", "ro"],
     ["baseline", "closing", "good.png", "--out", "ro/o.png"], {},
     r".*/ro/o\.png: cannot write the output: the folder .*/ro is not writable "
     r"\(permission denied\)"),
    ("baseline-store-to-read-only-folder", ["store.zarr", "ro"],
     ["baseline", "closing", "store.zarr", "--out", "ro/o.zarr"], {},
     r".*/ro/o\.zarr: cannot write the mask store: the folder .*/ro is not writable "
     r"\(permission denied\)"),
]
NEEDS_READ_ONLY = ("ro", "ro_store.zarr", "out/store.zarr", "out/store.previews",
                   ".o.png.distpaint-infer")


def _tree(root: pathlib.Path) -> dict[str, str]:
    """Every file and folder under `root`: relative path -> sha256 of the bytes ('dir')."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _command(argv: list[str], read_only: bool) -> list[str]:
    if not read_only or os.geteuid() != 0:
        return [DISTPAINT, *argv]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot be tested")
    # root writes anywhere; without CAP_DAC_OVERRIDE the kernel checks permissions as for users
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", DISTPAINT, *argv]


@pytest.mark.parametrize(("files", "argv", "env", "line"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, request, files, argv, env,
                                                          line):
    import re

    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        MAKE[name](path)
    if any("{ckpt}" in a for a in argv):
        argv = [a.replace("{ckpt}", request.getfixturevalue("ckpt")) for a in argv]
    read_only = any(name in NEEDS_READ_ONLY for name in files)
    before = _tree(tmp_path)
    try:
        proc = subprocess.run(_command(argv, read_only), cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env={**os.environ, **env})
        after = _tree(tmp_path)
    finally:
        for path in tmp_path.rglob("*"):  # let pytest clean up read-only folders
            if path.is_dir():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert re.fullmatch(line, lines[0][len("error: "):]), lines[0]
    named = [name.split("/")[0] for name in files if name.split("/")[0] in lines[0]]
    assert named or any(option in lines[0] for option in (
        "DISTPAINT_MAX_IMAGE_PIXELS", "no file matches", "no such file", "--sample")), lines[0]
    assert after == before  # inputs byte-identical, nothing written or left behind


def test_every_case_is_listed_once():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
