"""indexes for the billing report

Revision ID: 0002
Revises: 0001

Heartbeats are nearly all rows of ``session_events``. These indexes let the
monthly report find the few events that set media state, and the sessions
whose billable time began in a month, without reading the heartbeats.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_session_events_session_kind",
        "session_events",
        ["session_id", "kind", "at_ms"],
    )
    op.create_index(
        "ix_session_events_kind_at",
        "session_events",
        ["kind", "at_ms", "session_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_session_events_kind_at", table_name="session_events")
    op.drop_index("ix_session_events_session_kind", table_name="session_events")
