"""Writes the small .npy files read by test/npy.test.ts (run: .venv/bin/python test/data/make_npy.py).

Every array holds known values, so the test checks against these formulas, not against oxinfer.
"""
from pathlib import Path

import numpy as np

here = Path(__file__).parent
values = [0, 1, 2, 3, 4, 5]  # as a 2x3 array in each dtype
for dt in ["f4", "f8", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1"]:
    np.save(here / f"arange_{dt}.npy", np.array(values, dtype="<" + dt).reshape(2, 3))
np.save(here / "bool.npy", np.array([True, False, True, True]))
np.save(here / "scalar_f8.npy", np.array(-2.5))  # 0-d
np.save(here / "empty_f4.npy", np.zeros((0, 3), dtype="<f4"))
np.save(here / "negative_i8.npy", np.array([-1, -(2**40), 2**62], dtype="<i8"))
np.save(here / "half_specials.npy", np.array([-1.5, 65504, np.inf, 2**-24], dtype="<f2"))
# Format 2.0 and 3.0 headers (np.save picks 1.0 when it can; write the others explicitly).
for version in [(2, 0), (3, 0)]:
    with open(here / f"v{version[0]}_f4.npy", "wb") as f:
        np.lib.format.write_array(f, np.array([1.5, -2.25, 3.0], dtype="<f4"), version=version)
# Layouts oxinfer refuses.
np.save(here / "fortran_f4.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
np.save(here / "big_endian_i4.npy", np.array([1, 2, 3], dtype=">i4"))
