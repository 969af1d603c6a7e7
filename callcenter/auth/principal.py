"""Who is calling an API, and which regions they may see.

Region scope follows the GB/T 2260 code layout ``PPCCXX`` (province, city, county): a province
user (``330000``) sees every code starting ``33``; a city user (``330400``) sees ``3304xx``,
the city and its counties; a county user (``330402``) sees only its own code. Admins are scoped
like anyone else, so a city admin cannot manage another city.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callcenter.db.models import Role

AuthKind = Literal["cookie", "bearer"]


def region_prefix_of(region_code: str) -> str:
    """The code prefix shared by every region visible from ``region_code``."""
    if region_code.endswith("0000"):
        return region_code[:2]
    if region_code.endswith("00"):
        return region_code[:4]
    return region_code


def is_region_code(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    display_name: str
    role: Role
    region_code: str
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    auth_kind: AuthKind
    session_hash: str = field(repr=False)
    csrf_token: str | None = field(default=None, repr=False)

    @property
    def is_province_scope(self) -> bool:
        return self.region_code.endswith("0000")

    @property
    def region_prefix(self) -> str:
        """For SQL filters: ``column LIKE prefix || '%'`` (or ``column.startswith(prefix)``)."""
        return region_prefix_of(self.region_code)

    def can_see_region(self, code: str | None) -> bool:
        """``None`` (a call or record with no known region) is visible to province scope only."""
        if code is None:
            return self.is_province_scope
        return is_region_code(code) and code.startswith(self.region_prefix)

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles
