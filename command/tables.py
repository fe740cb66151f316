"""Every table of command/'s rooms, imported once so the metadata holds them all.

Alembic's autogenerate and the migration tests compare against the full metadata; a room's
models module alone registers only its own tables (and those it has foreign keys to)."""

from command.auth import models as _auth  # noqa: F401
from command.drills import models as _drills  # noqa: F401
from command.incidents import models as _incidents  # noqa: F401
from command.intake import models as _intake  # noqa: F401
from command.planning import models as _planning  # noqa: F401
from command.response_plans import models as _response_plans  # noqa: F401
from command.tasks import models as _tasks  # noqa: F401
from command.zones import models as _zones  # noqa: F401
