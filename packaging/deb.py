"""Make the Debian package from the standalone folder: ``packaging/build`` calls this.

Why a script of its own and not debhelper: the folder is already built (PyInstaller), so the
package is a file tree plus metadata, and ``dpkg-deb`` alone makes it without a source package or
any build tool beyond Debian's base. The tree:

* ``/usr/lib/workbench/``: the standalone folder as built;
* ``/usr/bin/nvwb``, ``/usr/bin/workbench``: links into it;
* ``/usr/share/applications/workbench.desktop``: the menu entry, also the ``nvwb://`` link
  handler (``MimeType=x-scheme-handler/nvwb``); its name is the app's ``desktopFileName``;
* ``/usr/share/icons/hicolor/*/apps/workbench.{png,svg}``: the icon, rendered from
  ``resources/icons/workbench.svg`` by Qt at the usual sizes;
* ``postinst``/``postrm``: ``update-desktop-database`` so the link handler is known at once and
  forgotten on removal.

Run: ``python packaging/deb.py --bundle dist/workbench --work build/packaging/deb --out dist``
(with Qt importable and ``QT_QPA_PLATFORM=offscreen`` on a machine without a display).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "workbench"
# Not /opt: no package owns /opt on Debian, so dpkg would remove the folder (there before the
# install) along with the package once it is empty; /usr/lib/PACKAGE is where Debian keeps a
# package's private files.
PREFIX = Path("usr/lib/workbench")
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)

# What the frozen folder needs from the system (glibc aside): the libraries Qt's xcb platform
# plugin, OpenGL/EGL, fonts and D-Bus load (PyInstaller bundles Qt itself, not these), the
# desktop database that registers the link handler, the certificates HTTPS uses, and git
# (creating and cloning a project).
# packaging/check-deb installs the package on a bare Debian and fails on any library left
# unresolved, so a missing entry here shows there.
DEPENDS = (
    "libc6 (>= 2.36)",
    "libstdc++6",
    "zlib1g",
    "libegl1",
    "libgl1",
    "libopengl0",
    "libfontconfig1",
    "libfreetype6",
    "libglib2.0-0",
    "libdbus-1-3",
    "libxkbcommon0",
    "libxkbcommon-x11-0",
    "libx11-6",
    "libx11-xcb1",
    "libxcb1",
    "libxcb-cursor0",
    "libxcb-icccm4",
    "libxcb-image0",
    "libxcb-keysyms1",
    "libxcb-randr0",
    "libxcb-render-util0",
    "libxcb-shape0",
    "libxcb-sync1",
    "libxcb-xfixes0",
    "libxcb-xinerama0",
    "libxcb-xkb1",
    "libwayland-client0",
    "libwayland-cursor0",
    "libwayland-egl1",
    "desktop-file-utils",
    "git",
    "ca-certificates",
)
# Not needed to start, needed to do the work: the local Docker engine, the system ssh (faster
# forwards and sync), xdg-utils (open an app's URL in the browser).
RECOMMENDS = ("docker.io | docker-ce", "openssh-client", "xdg-utils")

DESKTOP_ENTRY = """\
[Desktop Entry]
Type=Application
Name=Workbench
GenericName=AI project workbench
Comment=Run AI projects on this machine, an SSH host or a cloud GPU
Exec=/usr/bin/workbench %u
Icon=workbench
Terminal=false
Categories=Development;
Keywords=AI;GPU;Jupyter;Docker;container;
MimeType=x-scheme-handler/nvwb;
StartupNotify=true
StartupWMClass=workbench
"""

# Triggered by dpkg; the link handler must be known (and forgotten) at once, so the desktop
# database is refreshed here too, when its tool is there.
POSTINST = """\
#!/bin/sh
set -e
if [ "$1" = "configure" ] && command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q /usr/share/applications || true
fi
exit 0
"""
POSTRM = """\
#!/bin/sh
set -e
if { [ "$1" = "remove" ] || [ "$1" = "purge" ]; } \\
    && command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q /usr/share/applications || true
fi
exit 0
"""

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: workbench

Files: *
License: Apache-2.0
 The bundled Python, Qt (LGPL-3.0, as shipped in PySide6-Essentials) and Python packages keep
 their own licenses; see /usr/lib/workbench/_internal/*.dist-info.
"""


def version() -> str:
    namespace: dict[str, object] = {}
    exec((REPO / "workbench" / "__init__.py").read_text(), namespace)
    return str(namespace["__version__"])


def architecture() -> str:
    return subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()


def render_icons(svg: Path, root: Path) -> None:
    """The SVG, and a PNG of it at each size, where the icon theme looks."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"deb.py: {svg} is not an SVG Qt can render")
    hicolor = root / "usr/share/icons/hicolor"
    scalable = hicolor / "scalable/apps"
    scalable.mkdir(parents=True)
    shutil.copyfile(svg, scalable / f"{PACKAGE}.svg")
    for size in ICON_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        folder = hicolor / f"{size}x{size}/apps"
        folder.mkdir(parents=True)
        if not image.save(str(folder / f"{PACKAGE}.png"), "PNG"):
            raise SystemExit(f"deb.py: could not write the {size}px icon")


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def installed_size_kib(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                total += (path.stat().st_size + 1023) // 1024
    return total


def md5sums(root: Path) -> str:
    lines = []
    for folder, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(folder, name)
            if path.is_symlink() or path.is_relative_to(root / "DEBIAN"):
                continue
            digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            lines.append(f"{digest}  {path.relative_to(root)}")
    return "\n".join(sorted(lines, key=lambda line: line[34:])) + "\n"


def clamp_times(root: Path, epoch: int | None) -> None:
    """Every file's time no later than ``epoch`` (the last commit), so the package's file list
    does not change with the time of the build."""
    if epoch is None:
        return
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            if path.lstat().st_mtime > epoch:
                os.utime(path, (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def build(bundle: Path, work: Path, out: Path) -> Path:
    for exe in ("workbench", "nvwb", "nvwb-service"):
        if not (bundle / exe).is_file():
            raise SystemExit(f"deb.py: {bundle} is not a standalone build (no {exe})")
    if work.exists():
        shutil.rmtree(work)
    root = work / "root"
    shutil.copytree(bundle, root / PREFIX, symlinks=True)
    (root / "usr/bin").mkdir(parents=True)
    for exe in ("nvwb", "workbench"):
        (root / "usr/bin" / exe).symlink_to(f"/{PREFIX}/{exe}")
    write(root / f"usr/share/applications/{PACKAGE}.desktop", DESKTOP_ENTRY)
    render_icons(REPO / "resources/icons/workbench.svg", root)
    write(root / f"usr/share/doc/{PACKAGE}/copyright", COPYRIGHT)

    ver, arch = version(), architecture()
    control = "\n".join(
        [
            f"Package: {PACKAGE}",
            f"Version: {ver}",
            f"Architecture: {arch}",
            "Maintainer: Workbench developers <workbench@localhost>",
            f"Installed-Size: {installed_size_kib(root)}",
            f"Depends: {', '.join(DEPENDS)}",
            f"Recommends: {', '.join(RECOMMENDS)}",
            "Section: devel",
            "Priority: optional",
            "Description: desktop workbench for AI projects (app, nvwb CLI, per-user service)",
            " Keep a project in NVIDIA AI Workbench's format and run it on this machine, an SSH",
            " host with a GPU, a Brev instance or any cloud VM: the app, the nvwb command and",
            " the per-user service that starts and stops machines, with their own Python and Qt",
            " under /usr/lib/workbench.",
            "",
        ]
    )
    write(root / "DEBIAN/control", control)
    write(root / "DEBIAN/postinst", POSTINST, 0o755)
    write(root / "DEBIAN/postrm", POSTRM, 0o755)
    write(root / "DEBIAN/md5sums", md5sums(root))
    clamp_times(root, int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None)

    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{PACKAGE}_{ver}_{arch}.deb"
    # xz (every dpkg reads it) at level 2: 58 MiB in about 30 s here, where the default level 6
    # saves 6 MiB for 3 to 7 times the time on two cores (docs/packaging.md).
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "-z2", "--build", str(root), str(target)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"[packaging/deb.py] {target} ({target.stat().st_size / 2**20:.1f} MiB)", file=sys.stderr)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True, help="the standalone folder")
    parser.add_argument("--work", type=Path, required=True, help="a scratch folder (replaced)")
    parser.add_argument("--out", type=Path, required=True, help="where the .deb goes")
    args = parser.parse_args()
    build(args.bundle, args.work, args.out)


if __name__ == "__main__":
    main()
