//! The read the scheduler arms its one-shot wake with (`GetNextDueAt`): the earliest instant a
//! slot is due, jitter included, so the wake fires at slot + offset rather than at the slot.

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::GetNextDueAt;
use crate::Result;
use crate::declaration::MAX_JOB_WINDOW_MS;
use crate::policy::jitter_offset;
use crate::time::{plus, to_millis};

/// How many pointers [`get_next_due_at`] looks at. Past them, it answers the earliest instant
/// the rest could be due (their slot), which only wakes the scheduler early; when all of them
/// are jittered slots already past, a later one may be found only by the next tick.
const NEXT_DUE_ROWS: u64 = 64;

/// The earliest instant after `after` at which a slot of an active job is due (slot + jitter
/// offset). Jittered jobs whose slot has passed but whose offset has not count too.
pub(super) async fn get_next_due_at(
    db: &DatabaseConnection,
    msg: GetNextDueAt,
) -> Result<Option<DateTime<Utc>>> {
    if msg.plugin_ids.is_empty() {
        return Ok(None);
    }
    let after = to_millis(msg.after);
    // A jittered slot is due at most a day (the longest jitter) after it.
    let jitter_window = after
        .checked_sub_signed(chrono::TimeDelta::milliseconds(MAX_JOB_WINDOW_MS as i64))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    // Two reads, each a range of its own index: slots after `after`, and passed slots of
    // jittered jobs whose offset may not have passed yet. Asked as one `OR`, no range could
    // start at `after`, and PostgreSQL walked every index entry of the day before it, dead
    // entries of the pointers that claims had moved included (migration
    // `m20261201_000013_index_jittered_due`).
    let base = || {
        PluginJob::find()
            .select_only()
            .column(PluginJobColumn::Id)
            .column(PluginJobColumn::NextRunAt)
            .column(PluginJobColumn::JitterMs)
            .filter(PluginJobColumn::Status.eq(JobStatus::Active))
            .filter(PluginJobColumn::PluginId.is_in(msg.plugin_ids.iter().cloned()))
            .order_by_asc(PluginJobColumn::NextRunAt)
            .limit(NEXT_DUE_ROWS)
    };
    let passed = base()
        // A literal, not a bind value: the partial index's `jitter_ms > 0` must be provable
        // from the query's text for a generic plan to use it.
        .filter(Expr::cust(r#""plugin_jobs"."jitter_ms" > 0"#))
        .filter(PluginJobColumn::NextRunAt.gt(jitter_window))
        .filter(PluginJobColumn::NextRunAt.lte(after))
        .into_tuple::<(Uuid, Option<DateTime<Utc>>, Option<i64>)>()
        .all(db)
        .await?;
    // Every passed slot comes before every slot ahead: together, the first rows in slot order.
    let mut rows = passed;
    let room = NEXT_DUE_ROWS - rows.len() as u64;
    if room > 0 {
        rows.extend(
            base()
                .filter(PluginJobColumn::NextRunAt.gt(after))
                .limit(room)
                .into_tuple::<(Uuid, Option<DateTime<Utc>>, Option<i64>)>()
                .all(db)
                .await?,
        );
    }
    let full = rows.len() as u64 == NEXT_DUE_ROWS;
    let earliest = rows
        .iter()
        .filter_map(|(id, slot, jitter)| {
            slot.map(|slot| plus(slot, jitter_offset(*id, slot, *jitter)))
        })
        .filter(|due| *due > after)
        .min();
    // Rows past the last one read are due at their slot or later.
    let unread = rows
        .last()
        .and_then(|(_, slot, _)| *slot)
        .filter(|slot| full && *slot > after);
    Ok(match (earliest, unread) {
        (Some(due), Some(slot)) => Some(due.min(slot)),
        (due, slot) => due.or(slot),
    })
}
