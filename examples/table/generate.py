"""Generate the pets demo tables next to this file: ``data.csv`` and ``attributes.csv``.

The story: a shelter measured 600 dogs of five breeds and wants to tell the breed from the measurements.
A vet filled in, once per breed, how much each breed has three visible traits (``floppy_ears``, ``long_hair``,
``large``; scores in [0, 1]). Those per-class scores are the auxiliary tasks. They are not decoration: each dog's
measurements come from its own version of its breed's traits, so a trunk that learns the traits learns
features that sort the breeds. The breeds overlap (noisy measurements, mixed-looking dogs) so the main task is
not trivial. ``age_years`` is unrelated to everything.

Deterministic: run ``python examples/table/generate.py`` and the same two files come out.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SEED = 7
N_DOGS = 600
HERE = Path(__file__).resolve().parent

# Per-breed trait scores in [0, 1], mostly near the ends: what a vet would tick for a typical dog.
BREEDS: dict[str, dict[str, float]] = {
    "beagle":        {"floppy_ears": 0.95, "long_hair": 0.05, "large": 0.20},
    "border_collie": {"floppy_ears": 0.20, "long_hair": 0.90, "large": 0.70},
    "chihuahua":     {"floppy_ears": 0.05, "long_hair": 0.20, "large": 0.02},
    "husky":         {"floppy_ears": 0.02, "long_hair": 0.80, "large": 0.90},
    "poodle":        {"floppy_ears": 0.95, "long_hair": 0.95, "large": 0.75},
}
# Hours of activity a day: the one feature that depends on the breed directly rather than through a trait.
ACTIVITY = {"beagle": 2.0, "border_collie": 2.5, "chihuahua": 1.0, "husky": 3.0, "poodle": 1.5}


def generate(seed: int = SEED, n: int = N_DOGS) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The data rows and the attribute rows."""
    rng = np.random.default_rng(seed)
    names = sorted(BREEDS)
    breeds = rng.choice(names, size=n)
    rows: list[dict[str, object]] = []
    for breed in breeds:
        traits = BREEDS[str(breed)]
        # This dog's own version of its breed's traits: breeds overlap, a floppy-eared husky happens.
        size = float(np.clip(traits["large"] + rng.normal(0, 0.12), 0, 1))
        floppy = float(np.clip(traits["floppy_ears"] + rng.normal(0, 0.15), 0, 1))
        hair = float(np.clip(traits["long_hair"] + rng.normal(0, 0.15), 0, 1))
        rows.append({
            "weight_kg": round(3 + 35 * size + rng.normal(0, 3.0), 1),
            "height_cm": round(18 + 50 * size + rng.normal(0, 5.0), 1),
            "ear_droop_deg": round(10 + 80 * floppy + rng.normal(0, 12.0), 1),
            "coat_length_cm": round(1 + 9 * hair + rng.normal(0, 1.5), 1),
            "activity_h": round(max(0.1, ACTIVITY[str(breed)] + rng.normal(0, 0.8)), 2),
            "age_years": round(float(rng.uniform(0.5, 14)), 1),
            "breed": str(breed),
        })
    attributes = [{"breed": b, **BREEDS[b]} for b in names]
    return rows, attributes


def write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    rows, attributes = generate()
    write_csv(HERE / "data.csv", rows)
    write_csv(HERE / "attributes.csv", attributes)
    print(f"wrote {HERE / 'data.csv'} ({len(rows)} rows) and {HERE / 'attributes.csv'} ({len(attributes)} rows)")


if __name__ == "__main__":
    main()
