"""Generate a small pet-breed image folder and its per-breed attribute table (no download): the case auxtune is for.

Each breed is drawn as a coloured animal-like shape on noise: a body (an ellipse whose size is the breed's ``body``
score), ears (triangles whose height is its ``ear`` score) and a coat (whose lightness is its ``coat`` score), in a
hue of its own. So the three per-breed scores in ``attributes.csv`` are soft auxiliary targets that describe what
the network must see to tell the breeds apart.

    python examples/pets-images/make_data.py                      # 12 breeds × 40 images in examples/pets-images/pets
    python examples/pets-images/make_data.py --breeds 37 --per-breed 100 --zip   # all 37, and pets.zip to upload

Writes ``pets/images/<breed>/<n>.png`` and ``pets/attributes.csv`` (columns ``class, ear, coat, body``); with
``--zip``, also ``pets.zip`` (``images/...`` and ``attributes.csv`` at its top level) for ``POST /api/v1/datasets``.
"""

from __future__ import annotations

import argparse
import colorsys
import csv
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
#: The 37 breeds of the Oxford-IIIT Pet data set (names only).
BREEDS = ("abyssinian", "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "bengal",
          "birman", "bombay", "boxer", "british_shorthair", "chihuahua", "egyptian_mau", "english_cocker_spaniel",
          "english_setter", "german_shorthaired", "great_pyrenees", "havanese", "japanese_chin", "keeshond",
          "leonberger", "maine_coon", "miniature_pinscher", "newfoundland", "persian", "pomeranian", "pug",
          "ragdoll", "russian_blue", "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "siamese",
          "sphynx", "staffordshire_bull_terrier", "wheaten_terrier", "yorkshire_terrier")


def scores(n: int, seed: int) -> np.ndarray:
    """Per-breed (ear, coat, body) scores in [0, 1], fixed by ``seed``."""
    return np.round(np.random.default_rng(seed).uniform(0.05, 0.95, size=(n, 3)), 2)


def draw(rng: np.random.Generator, hue: float, ear: float, coat: float, body: float, size: int) -> Image.Image:
    noise = rng.normal(70, 25, size=(size, size, 3)).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(noise)
    pen = ImageDraw.Draw(img)
    r, g, b = colorsys.hls_to_rgb(hue, 0.25 + 0.6 * coat, 0.8)
    colour = (int(r * 255), int(g * 255), int(b * 255))
    cx, cy = size / 2 + rng.uniform(-size / 10, size / 10), size * 0.58 + rng.uniform(-size / 12, size / 12)
    half = size * (0.16 + 0.2 * body)
    pen.ellipse((cx - half, cy - half * 0.8, cx + half, cy + half * 0.8), fill=colour)
    top, height = cy - half * 0.7, size * (0.05 + 0.3 * ear)
    for side in (-1, 1):
        x = cx + side * half * 0.55
        pen.polygon([(x - half * 0.25, top), (x + half * 0.25, top), (x, top - height)], fill=colour)
    return img


def generate(out: Path, breeds: int = 12, per_breed: int = 40, size: int = 48, seed: int = 0,
             make_zip: bool = False) -> Path:
    """Write ``out/images/<breed>/*.png`` and ``out/attributes.csv`` (and ``out.zip`` with ``make_zip``); returns
    ``out``."""
    names = BREEDS[:max(2, min(breeds, len(BREEDS)))]
    table = scores(len(names), seed)
    rng = np.random.default_rng(seed + 1)
    for i, breed in enumerate(names):
        folder = out / "images" / breed
        folder.mkdir(parents=True, exist_ok=True)
        ear, coat, body = table[i]
        for n in range(per_breed):
            draw(rng, i / len(names), ear, coat, body, size).save(folder / f"{n:04d}.png")
    with (out / "attributes.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "ear", "coat", "body"])
        writer.writerows([breed, *map(float, row)] for breed, row in zip(names, table, strict=True))
    print(f"wrote {len(names)} breeds × {per_breed} images to {out}/images and {out}/attributes.csv")
    if make_zip:
        archive = out.with_suffix(".zip")
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted(out.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(out).as_posix())
        print(f"wrote {archive} ({archive.stat().st_size / 1e6:.1f} MB): upload it with POST /api/v1/datasets")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breeds", type=int, default=12, help="how many of the 37 breeds (default 12)")
    parser.add_argument("--per-breed", type=int, default=40, help="images per breed (default 40)")
    parser.add_argument("--size", type=int, default=48, help="image side in pixels (default 48)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "pets", help="the folder to write (default ./pets)")
    parser.add_argument("--zip", action="store_true", help="also write <out>.zip, ready to upload")
    args = parser.parse_args()
    generate(args.out, args.breeds, args.per_breed, args.size, args.seed, args.zip)


if __name__ == "__main__":
    main()
