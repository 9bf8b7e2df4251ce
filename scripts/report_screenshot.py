"""docs/report.png: the top of a `clipcov report` page (its summary, composition and scores sections) as headless
Chromium shows it, with the browser test's flags (tests/test_selection_report.py).

    python scripts/report_screenshot.py demo_out/report.html docs/report.png
"""
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(page, out, width=1100, height=1180):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("report_screenshot: needs Chromium (Debian's chromium package)")
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}",
                        f"--screenshot={shot}", Path(page).resolve().as_uri()], check=True, capture_output=True)
        im = Image.open(shot).convert("RGB")
        im = im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
        im.quantize(colors=128).save(out, optimize=True)  # a small file for the README
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
