"""Where a jar sits in its rack, and how much warmer or cooler than the room that makes its air.

Warm air stratifies, so higher shelves are warmer; a jar between two neighbours sheds less heat
sideways than one at the end of a row. :func:`jar_ambient_offset_c` gives each position's offset
from the room temperature (the string's mean offset is zero, so a string's average jar sees the
room the ageing and float-current laws were calibrated in). Installation practice bounds it:
IEEE 1187/1188 (as commonly quoted) and vendors' installation guides (C&D, EnerSys, Yuasa) ask for
no more than 3 K between the jars of one string, and a well-kept room gets 1-3 K. Model and figures:
``docs/physics.md`` §11.
"""

from __future__ import annotations

import numpy as np

# Rack layout assumed for a string (a typical stepped or cabinet rack of 12 V blocks): 6 jars a
# shelf, 4 shelves a rack; a longer string continues on the next rack, bottom shelf first.
JARS_PER_SHELF = 6
SHELVES_PER_RACK = 4
# Stratification: about 0.5 K per shelf (≈0.4 m; data-centre rooms stratify 1-2 K/m between floor
# and top of rack, ASHRAE TC 9.9 thermal guidelines), 1.5 K bottom to top of a 4-shelf rack.
VERTICAL_GRADIENT_C_PER_SHELF = 0.5
# Middle of a row warmer than its ends by 0.6 K (end jars have a free side to the aisle; the
# spacing vendors ask for, ~10 mm between blocks, leaves neighbours warming each other).
ROW_MIDDLE_WARMING_C = 0.6
# Local air-flow differences per jar (a cable tray, a gap): σ 0.2 K, kept within ±0.4 K, so the
# whole spread of a string stays within 1.5 + 0.6 + 0.8 = 2.9 K, inside the 3 K allowed.
LOCAL_SIGMA_C = 0.2
LOCAL_LIMIT_C = 0.4
MAX_STRING_SPREAD_C = 3.0


def jar_ambient_offset_c(position_in_string, jars_in_string: int, jars_per_shelf: int = JARS_PER_SHELF,
                         shelves_per_rack: int = SHELVES_PER_RACK,
                         vertical_gradient_c_per_shelf: float = VERTICAL_GRADIENT_C_PER_SHELF,
                         row_middle_warming_c: float = ROW_MIDDLE_WARMING_C):
    """Air temperature beside the jar at 1-based ``position_in_string`` minus the room's, K.

    Jars fill a shelf left to right, shelves bottom to top, then the next rack. The offset is
    ``gradient · shelf + warming · (1 - (2u - 1)²)`` (``u`` = place along the row, 0 at one end and 1
    at the other), less its mean over the string. A jar alone on its string sits at the room's.
    """
    if jars_in_string < 1 or jars_per_shelf < 1 or shelves_per_rack < 1:
        raise ValueError("jars_in_string, jars_per_shelf and shelves_per_rack must be at least 1")
    position = np.asarray(position_in_string)
    if np.any((position < 1) | (position > jars_in_string)):
        raise ValueError(f"position_in_string must be between 1 and jars_in_string ({jars_in_string})")

    def raw_offset_c(index):
        row = index // jars_per_shelf
        row_length = np.minimum(jars_per_shelf, jars_in_string - row * jars_per_shelf)
        along = np.where(row_length > 1, (index % jars_per_shelf) / np.maximum(row_length - 1, 1), 0.5)
        middle = np.where(row_length > 1, 1.0 - np.square(2.0 * along - 1.0), 0.0)
        return vertical_gradient_c_per_shelf * (row % shelves_per_rack) + row_middle_warming_c * middle

    return raw_offset_c(position - 1) - raw_offset_c(np.arange(jars_in_string)).mean()


def local_offset_c(standard_normal):
    """A jar's own air-flow offset from one standard normal of its own stream, K."""
    return np.clip(LOCAL_SIGMA_C * np.asarray(standard_normal), -LOCAL_LIMIT_C, LOCAL_LIMIT_C)
