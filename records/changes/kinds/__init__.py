"""One module per action. To add an action: a `types.Action` member, a `ChangeKind` subclass in
its own module here (clean, writes, outcome, summary; snapshots if not a reference), and its
entry in KINDS."""

from ..types import Action
from .base import ChangeKind
from .edit import Edit
from .link import Link
from .merge import Merge
from .set_id import SetId
from .unlink import Unlink

KINDS: dict[Action, ChangeKind] = {
    kind.action: kind for kind in (Link(), Edit(), Unlink(), SetId(), Merge())
}


def kind_of(action: Action) -> ChangeKind:
    return KINDS[action]
