#!/usr/bin/env python3
"""Crops and montage for docs/images/attention-examples.png.

The photo is NASA's public-domain portrait of Eileen Collins that Debian ships
in python3-skimage (skimage/data/astronaut.png). Two steps, around a run of
fer-client (docs/model.md, "Attention maps", shows the whole sequence):

  attention_examples.py crops PHOTO CROPS_DIR     six crops: the face aligned,
                                                  shifted, loose; three non-faces
  fer-client classify --attention=OUT_DIR CROPS_DIR/*.png
  attention_examples.py montage OUT_DIR PICTURE   the six pictures in a 3 x 2 grid

Needs python3-pil.
"""
import os
import sys

from PIL import Image, ImageDraw, ImageFont

# name: (centre x, centre y, side) in the 512 x 512 photo, and the caption.
CROPS = {
    "1-aligned": ((226, 122, 124), "aligned face"),
    "2-shifted": ((275, 159, 124), "face shifted 40%"),
    "3-loose": ((226, 142, 223), "loose crop (1.8x)"),
    "4-shuttle": ((400, 150, 150), "not a face: shuttle"),
    "5-flag": ((50, 120, 120), "not a face: flag"),
    "6-helmet": ((390, 420, 150), "not a face: helmet"),
}
SIDE = 224
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def crops(photo, out_dir):
    image = Image.open(photo).convert("RGB")
    os.makedirs(out_dir, exist_ok=True)
    for name, ((x, y, side), _) in CROPS.items():
        box = (x - side // 2, y - side // 2, x + side // 2, y + side // 2)
        image.crop(box).resize((SIDE, SIDE)).save(os.path.join(out_dir, name + ".png"))


def montage(pictures_dir, picture):
    tiles = [(Image.open(os.path.join(pictures_dir, name + ".png")).convert("RGB"), caption)
             for name, (_, caption) in CROPS.items()]
    width, height = tiles[0][0].size
    caption_height = 26
    out = Image.new("RGB", (3 * width, 2 * (height + caption_height)), "white")
    draw = ImageDraw.Draw(out)
    try:
        font = ImageFont.truetype(FONT, 15)
    except OSError:
        font = ImageFont.load_default()
    for i, (tile, caption) in enumerate(tiles):
        x, y = (i % 3) * width, (i // 3) * (height + caption_height)
        out.paste(tile, (x, y))
        draw.text((x + 6, y + height + 4), caption, fill="black", font=font)
    out.quantize(colors=128).save(picture, optimize=True)


def main(argv):
    if len(argv) != 4 or argv[1] not in ("crops", "montage"):
        sys.exit(__doc__)
    (crops if argv[1] == "crops" else montage)(argv[2], argv[3])


if __name__ == "__main__":
    main(sys.argv)
