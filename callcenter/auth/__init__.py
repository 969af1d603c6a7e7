"""Authentication and authorization: users, logins, sessions, and the caller of each API.

Other features import :data:`callcenter.auth.deps.CurrentUser` and
:func:`callcenter.auth.deps.require_roles` for their routes, and filter their queries with
:attr:`callcenter.auth.principal.Principal.region_prefix`.
"""

from callcenter.auth.principal import Principal

__all__ = ["Principal"]
