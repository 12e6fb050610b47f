"""``storage.non_dominated``: the front as the definition gives it, fast enough for a 10 000-trial study."""

from __future__ import annotations

import random
import time

from storage import dominates, non_dominated


def test_the_front_is_what_the_definition_gives_ties_included() -> None:
    rng = random.Random(0)
    for _ in range(300):  # small integer grids: many ties and equal vectors
        m = rng.randint(1, 4)
        directions = [rng.choice(["maximize", "minimize"]) for _ in range(m)]
        points = {3 * i + 1: [float(rng.randint(0, 4)) for _ in range(m)] for i in range(rng.randint(0, 30))}
        by_definition = sorted(k for k, v in points.items()
                               if not any(dominates(w, v, directions) for j, w in points.items() if j != k))
        assert non_dominated(points, directions) == by_definition, (points, directions)


def test_blocks_compared_with_each_other_give_the_definitions_front_too() -> None:
    """Past one block of points (``storage._pareto._BLOCK``), a point is checked against earlier blocks' front."""
    rng = random.Random(2)
    for m, grid in ((2, True), (3, False), (2, False)):
        directions = [rng.choice(["maximize", "minimize"]) for _ in range(m)]
        points = {i: [float(rng.randint(0, 30)) if grid else rng.random() for _ in range(m)] for i in range(600)}
        by_definition = sorted(k for k, v in points.items()
                               if not any(dominates(w, v, directions) for j, w in points.items() if j != k))
        assert non_dominated(points, directions) == by_definition, directions


def test_ten_thousand_trials_take_well_under_a_second() -> None:
    rng = random.Random(1)
    points = {i: [rng.random(), rng.random(), rng.random()] for i in range(10_000)}
    start = time.perf_counter()
    front = non_dominated(points, ["maximize", "minimize", "minimize"])
    assert time.perf_counter() - start < 5.0  # the pairwise check took minutes
    assert front and all(not dominates(points[j], points[k], ["maximize", "minimize", "minimize"])
                         for k in front for j in front)
