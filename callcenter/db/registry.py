"""Every table of the platform in one metadata, for Alembic and the schema drift check.

Feature packages keep their own models (``ticketing/models.py``…); importing them here is the
one place that makes ``Base.metadata`` complete. Add a new feature's models module below.
"""

import ticketing.models  # noqa: F401
from callcenter.db import models  # noqa: F401
from callcenter.db.base import Base

metadata = Base.metadata
