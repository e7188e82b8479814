"""Shared helpers for the hwmodels tests (imported by name: pytest puts this folder on sys.path)."""
from __future__ import annotations

import hwmodels


def board(**overrides):
    """zcu102 with nested overrides, fit check off (tests probe odd designs on purpose)."""
    return hwmodels.load_board("zcu102", overrides, check_fit=False)
