"""Drawings with real captions from Debian packages: Open Clip Art (SVG title + keywords, rendered with
cairosvg), Tux Paint stamps (their one-sentence description) and Noto Color Emoji (Unicode names)."""
import io
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .debian import package_files
from .writer import write_items

SIZE = 64  # drawings are rendered onto a white SIZE x SIZE square
NS = {"dc": "http://purl.org/dc/elements/1.1/", "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
      "cc": "http://web.resource.org/cc/"}


def _square(image):
    """Fit onto a white square, flattening transparency."""
    image = image.convert("RGBA")
    image.thumbnail((SIZE, SIZE))
    canvas = Image.new("RGB", (SIZE, SIZE), "white")
    canvas.paste(image, ((SIZE - image.width) // 2, (SIZE - image.height) // 2), image)
    return canvas


def render_svg(path):
    # unsafe=True lets XML entities through (Illustrator exports use them); these are local package files
    import cairosvg

    return _square(Image.open(io.BytesIO(cairosvg.svg2png(url=str(path), output_width=SIZE * 2, unsafe=True))))


def _pick(files, limit, rng):
    """A seeded sample of `limit` files (all, in order, without a limit)."""
    if limit is None or limit >= len(files):
        return list(files)
    return [files[i] for i in sorted(rng.choice(len(files), limit, replace=False))]


def clipart_caption(path):
    """'<title>, <keyword>, ...' from the SVG's Dublin Core metadata."""
    work = ET.parse(path).getroot().find(".//cc:Work", NS)
    if work is None:
        raise ValueError("no <cc:Work> metadata")
    title = (work.findtext("dc:title", "", NS) or "").strip()
    keywords = [(li.text or "").strip() for li in work.findall("dc:subject//rdf:li", NS)]
    caption = ", ".join(dict.fromkeys(t for t in [title] + keywords if t))  # drop repeats, keep order
    if not caption:
        raise ValueError("no title or keywords")
    return caption


# Each *_items(limit, rng) returns ([(key, make)], count); make() -> (image, caption) and may raise.

def clipart_items(limit, rng):
    files = _pick(package_files("openclipart-svg", [".svg"]), limit, rng)
    return [(f, lambda f=f: (render_svg(f), clipart_caption(f))) for f in files], len(files)


def stamp_items(limit, rng):
    pairs = []
    for t in map(Path, package_files("tuxpaint-stamps-default", [".txt"])):
        image = next((p for p in (t.with_suffix(".png"), t.with_suffix(".svg")) if p.is_file()), None)
        if image is not None:
            pairs.append((image, t))
    pairs = _pick(pairs, limit, rng)

    def make(image, text):
        caption = text.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()  # English line
        return (render_svg(image) if image.suffix == ".svg" else _square(Image.open(image))), caption

    return [(str(i), lambda i=i, t=t: make(i, t)) for i, t in pairs], len(pairs)


def emoji_items(limit, rng):
    from fontTools.ttLib import TTFont

    font_path = package_files("fonts-noto-color-emoji", ["NotoColorEmoji.ttf"])[0]
    cmap = TTFont(font_path, lazy=True).getBestCmap()
    chars = [chr(c) for c in sorted(cmap) if unicodedata.category(chr(c)) == "So" and unicodedata.name(chr(c), "")]
    chars = _pick(chars, limit, rng)
    font = ImageFont.truetype(font_path, 109)  # the only size of this bitmap font

    def make(ch):
        im = Image.new("RGBA", (160, 160), (255, 255, 255, 0))
        ImageDraw.Draw(im).text((8, 8), ch, font=font, embedded_color=True)
        if im.getbbox() is None:
            raise ValueError("renders as nothing")
        return _square(im.crop(im.getbbox())), unicodedata.name(ch).lower()

    return [(f"U+{ord(ch):04X}", lambda ch=ch: make(ch)) for ch in chars], len(chars)


def build_clipart(writer, limit, rng):
    write_items(writer, *clipart_items(limit, rng))
    return {"package": "openclipart-svg"}


def build_stamps(writer, limit, rng):
    write_items(writer, *stamp_items(limit, rng))
    return {"package": "tuxpaint-stamps-default"}


def build_emoji(writer, limit, rng):
    write_items(writer, *emoji_items(limit, rng))
    return {"package": "fonts-noto-color-emoji"}
