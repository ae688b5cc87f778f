"""Validators shared by models' fields."""

import math

from django.core.exceptions import ValidationError


def finite(value: float) -> None:
    """A float setting must be a number: NaN passes every bound (each comparison with it is
    false), and a stored NaN breaks the JSON the settings are read back as."""
    if value is not None and not math.isfinite(value):
        raise ValidationError("Give a finite number.", code="finite")
