"""Draw a W-2 in the IRS box layout with PIL.

The blank form (box outlines, labels, title) depends only on the page size and tax year,
so it is drawn once per process and copied for every form; only the values are drawn per
form. Boxes: the top strip (a), the left column (b-f), two right columns (1-14, 12a-12d),
two state/local rows (15-20) and the footer; the page holds as many copies (B, C) as fit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from torchtune_ext.data.synth.w2_values import NONE, W2Sample, box_field, state_field

__all__ = ["find_font", "render_w2", "W2Layout"]

FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont

#: Candidate font files: labels (sans) first, then value faces (printer-like).
_LABEL_FONTS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "Arial.ttf")
_LABEL_BOLD_FONTS = ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf")
_VALUE_FONTS = ("DejaVuSansMono.ttf", "LiberationMono-Regular.ttf", "DejaVuSans.ttf", "DejaVuSerif.ttf")
#: Text smaller than this (px) is not drawn: illegible, and drawing it dominates the cost.
_MIN_TEXT_PX = 4
#: Bottom of the state/local boxes as a fraction of the form height (the footer is below).
_BOXES_BOTTOM = 0.915
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")


@cache
def _font_index() -> dict[str, str]:
    index: dict[str, str] = {}
    dirs = [d for d in os.environ.get("W2_FONT_DIRS", "").split(os.pathsep) if d] + list(_FONT_DIRS)
    for root in dirs:
        if not os.path.isdir(root):
            continue
        for dirpath, _, files in os.walk(root):
            for name in files:
                if name.lower().endswith((".ttf", ".otf")):
                    index.setdefault(name, os.path.join(dirpath, name))
    return index


def find_font(candidates: tuple[str, ...]) -> str | None:
    """Path of the first installed font file among ``candidates``.

    Args:
        candidates (tuple[str, ...]): file names, in order of preference.

    Returns:
        str | None: a path, or None when none is installed (callers then use PIL's
        bundled font).
    """
    index = _font_index()
    for name in candidates:
        if name in index:
            return index[name]
    return None


@cache
def _font(path: str | None, size: int) -> FontT:
    size = max(1, size)
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    # Pillow >= 10.1 bundles a FreeType font; without FreeType this is the bitmap font.
    return ImageFont.load_default(size=size)


def _value_fonts() -> list[str | None]:
    faces: list[str | None] = []
    for name in _VALUE_FONTS:
        path = find_font((name,))
        if path is not None and path not in faces:
            faces.append(path)
    return faces or [None]


@dataclass(frozen=True)
class _Slot:
    x: float  # left edge of the value area (px, page coordinates of copy 0)
    y: float  # top of the value text
    w: float  # width of the value area
    align: str  # "left" or "right"


@dataclass
class W2Layout:
    """Geometry of one page: blank-form drawing commands and where each value goes.

    Args:
        width (int): page width in px.
        height (int): page height in px.
    """

    width: int
    height: int

    def __post_init__(self) -> None:
        w, h = self.width, self.height
        margin = 0.03 * w
        self.fw = w - 2 * margin
        self.fh = 0.5 * self.fw
        gap = 0.06 * self.fw
        self.copies = max(1, min(2, int((h - margin + gap) // (self.fh + gap))))
        self.x0 = margin
        self.y0s = [margin + i * (self.fh + gap) for i in range(self.copies)]
        self.row = 0.67 * self.fh / 9  # main-area row height
        self.value_size = max(1, round(0.5 * self.row))
        self.label_size = max(1, round(0.27 * self.row))
        self._slots: dict[str, _Slot] | None = None

    # Fractions of the form -> page px for copy 0.
    def _x(self, fx: float) -> float:
        return self.x0 + fx * self.fw

    def _y(self, fy: float) -> float:
        return self.y0s[0] + fy * self.fh

    def boxes(self) -> list[tuple[str, tuple[float, float, float, float]]]:
        """Labelled rectangles of the form, as fractions ``(x0, y0, x1, y1)`` of the form.

        Returns:
            list[tuple[str, tuple[float, float, float, float]]]: (label, rect) pairs.
        """
        top, main = 0.075, 0.67 / 9
        r = [top + i * main for i in range(10)]
        s0, s1, s2, s3 = r[9], r[9] + 0.05, r[9] + 0.05 + 0.055, r[9] + 0.05 + 0.11
        out = [
            ("22222", (0.0, 0.0, 0.12, top)),
            ("a  Employee's social security number", (0.12, 0.0, 0.5, top)),
            ("For Official Use Only \u25b6\nOMB No. 1545-0008", (0.5, 0.0, 1.0, top)),
            ("b  Employer identification number (EIN)", (0.0, r[0], 0.5, r[1])),
            ("c  Employer's name, address, and ZIP code", (0.0, r[1], 0.5, r[0] + 3.5 * main)),
            ("d  Control number", (0.0, r[0] + 3.5 * main, 0.5, r[0] + 4.5 * main)),
            ("e  Employee's first name and initial", (0.0, r[0] + 4.5 * main, 0.24, r[9])),
            ("Last name", (0.24, r[0] + 4.5 * main, 0.44, r[9])),
            ("Suff.", (0.44, r[0] + 4.5 * main, 0.5, r[9])),
        ]
        right = [
            ("1  Wages, tips, other compensation", "2  Federal income tax withheld"),
            ("3  Social security wages", "4  Social security tax withheld"),
            ("5  Medicare wages and tips", "6  Medicare tax withheld"),
            ("7  Social security tips", "8  Allocated tips"),
            ("9", "10  Dependent care benefits"),
            ("11  Nonqualified plans", "12a  See instructions for box 12"),
            ("13", "12b"),
            ("14  Other", "12c"),
            ("", "12d"),
        ]
        for i, (left, rgt) in enumerate(right):
            if left and left != "14  Other":
                out.append((left, (0.5, r[i], 0.75, r[i + 1])))
            out.append((rgt, (0.75, r[i], 1.0, r[i + 1])))
        out.append(("14  Other", (0.5, r[7], 0.75, r[9])))
        cols = [0.0, 0.05, 0.22, 0.38, 0.52, 0.68, 0.82, 1.0]
        labels = [
            "15  State", "Employer's state ID number", "16  State wages, tips, etc.",
            "17  State income tax", "18  Local wages, tips, etc.", "19  Local income tax",
            "20  Locality name",
        ]  # fmt: skip
        for i, label in enumerate(labels):
            out.append((label, (cols[i], s0, cols[i + 1], s3)))
        self._rows = r
        self._state = (cols, s1, s2)
        return out

    def slots(self) -> dict[str, _Slot]:
        """Where each value is printed (copy 0), keyed by box id.

        Returns:
            dict[str, _Slot]: slot per box id (``"1"``, ``"12a_code"``, ``"15_state_1"``, ...).
        """
        if self._slots is None:
            self._slots = self._make_slots()
        return self._slots

    def _make_slots(self) -> dict[str, _Slot]:
        self.boxes()
        r, main = self._rows, 0.67 / 9
        pad = 0.012
        vy = 0.36 * main  # top of a value inside a main row

        def slot(fx0: float, fx1: float, fy: float, align: str = "left") -> _Slot:
            return _Slot(self._x(fx0 + pad), self._y(fy), (fx1 - fx0 - 2 * pad) * self.fw, align)

        out: dict[str, _Slot] = {
            "a": slot(0.12, 0.5, 0.03),
            "b": slot(0.0, 0.5, r[0] + vy),
            "c_name": slot(0.0, 0.5, r[1] + vy),
            "c_street": slot(0.0, 0.5, r[1] + vy + 0.6 * main),
            "c_zip": slot(0.0, 0.5, r[1] + vy + 1.2 * main),
            "d": slot(0.0, 0.5, r[0] + 3.5 * main + vy),
            "e_first": slot(0.0, 0.24, r[0] + 4.5 * main + vy),
            "e_last": slot(0.24, 0.44, r[0] + 4.5 * main + vy),
            "e_suffix": slot(0.44, 0.5, r[0] + 4.5 * main + vy),
            "e_street": slot(0.0, 0.5, r[0] + 6.0 * main),
            "e_zip": slot(0.0, 0.5, r[0] + 6.6 * main),
            "14": slot(0.5, 0.75, r[7] + vy),
        }
        left = ["1", "3", "5", "7", "9", "11"]
        right = ["2", "4", "6", "8", "10"]
        for i, box in enumerate(left):
            out[box] = slot(0.5, 0.75, r[i] + vy, "right")
        for i, box in enumerate(right):
            out[box] = slot(0.75, 1.0, r[i] + vy, "right")
        for i, sub in enumerate("abcd"):
            out[f"12{sub}_code"] = slot(0.757, 0.81, r[5 + i] + vy)
            out[f"12{sub}_value"] = slot(0.81, 1.0, r[5 + i] + vy, "right")
        for k, name in enumerate(("statut", "retirement", "sick")):
            fx = 0.545 + k * 0.07
            out[f"13_{name}"] = slot(fx - 0.009, fx + 0.03, r[6] + 0.47 * main)
        cols, s1, s2 = self._state
        keys = ["15_state", "15_id", "16", "17", "18", "19", "20"]
        for row, fy in ((1, s1), (2, s2)):
            for i, key in enumerate(keys):
                align = "right" if key[:2] in {"16", "17", "18", "19"} else "left"
                out[f"{key}_{row}"] = slot(cols[i], cols[i + 1], fy + 0.008, align)
        return out


@lru_cache(maxsize=32)
def _template(width: int, height: int, year: int) -> tuple[Image.Image, W2Layout]:
    """The blank form (grayscale) for a page size and year, drawn once per process."""
    lay = W2Layout(width, height)
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    label = _font(find_font(_LABEL_FONTS), lay.label_size)
    tiny = _font(find_font(_LABEL_FONTS), max(1, round(0.8 * lay.label_size)))
    bold = _font(find_font(_LABEL_BOLD_FONTS) or find_font(_LABEL_FONTS), round(1.3 * lay.value_size))
    year_font = _font(find_font(_LABEL_BOLD_FONTS) or find_font(_LABEL_FONTS), round(1.8 * lay.value_size))
    small = _font(find_font(_LABEL_FONTS), max(1, round(0.8 * lay.value_size)))
    line = max(1, round(lay.fw / 600))
    boxes = lay.boxes()
    copies = ("Copy B\u2014To Be Filed With Employee's FEDERAL Tax Return.",
              "Copy C\u2014For EMPLOYEE'S RECORDS.")  # fmt: skip
    for c, y0 in enumerate(lay.y0s):

        def px(fx: float, fy: float, y0: float = y0) -> tuple[float, float]:
            return lay.x0 + fx * lay.fw, y0 + fy * lay.fh

        for text, (fx0, fy0, fx1, fy1) in boxes:
            (x0, y_0), (x1, y_1) = px(fx0, fy0), px(fx1, fy1)
            draw.rectangle((x0, y_0, x1, y_1), outline=0, width=line)
            if text and lay.label_size >= _MIN_TEXT_PX - 1:
                draw.multiline_text((x0 + 2 * line, y_0 + line), text, font=label, fill=40, spacing=0)
        # Box 9 is shaded on current forms; box 12 code columns; box 13 checkboxes.
        r = lay._rows
        x0, y_0 = px(0.5, r[4])
        x1, y_1 = px(0.75, r[5])
        if y_1 - y_0 > 8 * line:  # too small to shade on tiny pages
            draw.rectangle((x0 + 3 * line, y_0 + 3 * line, x1 - 3 * line, y_1 - 3 * line), fill=225)
        for i in range(4):
            xa, ya = px(0.81, r[5 + i] + 0.25 * (r[1] - r[0]))
            _, yb = px(0.81, r[6 + i])
            draw.line((xa, ya, xa, yb), fill=0, width=line)
            draw.text((px(0.7515, 0)[0], ya), "C\no\nd\ne", font=tiny, fill=90, spacing=-1)
        for k, name in enumerate(("Statutory\nemployee", "Retirement\nplan", "Third-party\nsick pay")):
            fx = 0.545 + k * 0.07
            bx0, by0 = px(fx, r[6] + 0.55 * (r[1] - r[0]))
            side = 0.38 * lay.row
            draw.rectangle((bx0, by0, bx0 + side, by0 + side), outline=0, width=line)
            draw.multiline_text((bx0 - 0.012 * lay.fw, by0 - 0.5 * lay.row), name, font=tiny, fill=40,
                                spacing=0)  # fmt: skip
        # Dashed separator between the two state rows.
        cols, s1, s2 = lay._state
        _, ys = px(0, s2 - 0.004)
        for xd in np.arange(lay.x0, lay.x0 + lay.fw, 6 * line):
            draw.line((xd, ys, xd + 3 * line, ys), fill=60, width=line)
        # Footer.
        _, yf = px(0, 1.0)
        fy = yf - 0.07 * lay.fh
        draw.text((lay.x0, fy), "Form W-2  Wage and Tax Statement", font=bold, fill=0)
        draw.text((lay.x0 + 0.5 * lay.fw, fy - 0.01 * lay.fh), str(year), font=year_font, fill=0)
        draw.text((lay.x0 + 0.64 * lay.fw, fy), "Department of the Treasury\u2014Internal Revenue Service",
                  font=label, fill=0)  # fmt: skip
        draw.text((lay.x0, yf - 0.018 * lay.fh), copies[c % 2], font=small, fill=0)
    return img, lay


def _split_name(name: str) -> tuple[str, str, str]:
    parts = name.split()
    suffix = ""
    if len(parts) > 2 and parts[-1].rstrip(".").upper() in {"JR", "SR", "II", "III", "IV"}:
        suffix = parts.pop()
    return " ".join(parts[:-1]), parts[-1], suffix


def _amount(value: Any, style: dict[str, Any]) -> str:
    if not isinstance(value, int | float) or value == 0:
        return ""
    text = f"{value:,.2f}" if style.get("commas") else f"{value:.2f}"
    return ("$" + text) if style.get("dollar") else text


def _texts(sample: W2Sample) -> dict[str, str]:
    """What is printed in each slot (empty string: blank box)."""
    rec, style = sample.record, sample.style

    def text(key: str) -> str:
        value = rec[key]
        return "" if value is None or value == NONE else str(value)

    first, last, suffix = _split_name(text(box_field("e", "name")))
    out = {
        "a": text(box_field("a")),
        "b": text(box_field("b")),
        "c_name": text(box_field("c", "name")),
        "c_street": text(box_field("c", "street")),
        "c_zip": text(box_field("c", "zip")),
        "d": text(box_field("d")),
        "e_first": first,
        "e_last": last,
        "e_suffix": suffix,
        "e_street": text(box_field("e", "street")),
        "e_zip": text(box_field("e", "zip")),
        "9": text(box_field("9")),
        "14": "\n".join(f"{code} {_amount(v, style)}" for code, v in sample.box14[:3]),
    }
    for box in ("1", "2", "3", "4", "5", "6", "7", "8", "10", "11"):
        out[box] = _amount(rec[box_field(box)], style)
    for sub in "abcd":
        out[f"12{sub}_code"] = text(box_field(f"12{sub}", "code"))
        out[f"12{sub}_value"] = _amount(rec[box_field(f"12{sub}", "value")], style)
    for name in ("statut", "retirement", "sick"):
        out[f"13_{name}"] = "X" if text(box_field("13", name)) else ""
    for row in (1, 2):
        for key in ("15_state", "15_id", "20"):
            out[f"{key}_{row}"] = text(state_field(key, row))
        for key in ("16", "17", "18", "19"):
            out[f"{key}_{row}"] = _amount(rec[state_field(key, row)], style)
    return out


def render_w2(sample: W2Sample, rng: np.random.Generator, width: int = 612, height: int = 792) -> Image.Image:
    """Render one W-2 page (grayscale) with the sample's values printed in their boxes.

    Args:
        sample (W2Sample): the values (``sample.record``) and printing style.
        rng (np.random.Generator): source of the print jitter, ink and face choices.
        width (int): page width in px.
        height (int): page height in px.

    Returns:
        Image.Image: an ``"L"`` image of ``width`` x ``height``.
    """
    template, lay = _template(width, height, sample.tax_year)
    img = template.copy()
    draw = ImageDraw.Draw(img)
    faces = _value_fonts()
    face = faces[int(rng.integers(len(faces)))]
    size = max(1, round(lay.value_size * rng.uniform(0.9, 1.1)))
    font = _font(face, size)
    ink = int(rng.integers(0, 70))
    right_align = bool(rng.random() < 0.7)
    jitter = 0.004 * lay.fw
    dx, dy = rng.uniform(-jitter, jitter, size=2)
    if size < _MIN_TEXT_PX:  # illegible on thumbnails: keep the blank form, skip the cost
        return img
    slots = lay.slots()
    for key, value in _texts(sample).items():
        if not value or key not in slots:
            continue
        s = slots[key]
        x = s.x + dx
        if s.align == "right" and right_align and "\n" not in value:
            x = s.x + s.w - draw.textlength(value, font=font) + dx
        if "\n" in value:
            draw.multiline_text((x, s.y + dy), value, font=font, fill=ink, spacing=1)
        else:
            draw.text((x, s.y + dy), value, font=font, fill=ink)
    # The other copies carry the same print: paste copy 0's boxes (not its footer) onto them.
    top = max(0, round(lay.y0s[0] - 0.01 * lay.fh))
    filled = img.crop((0, top, width, round(lay.y0s[0] + _BOXES_BOTTOM * lay.fh)))
    for y0 in lay.y0s[1:]:
        img.paste(filled, (0, top + round(y0 - lay.y0s[0])))
    return img
