//! The webhook outbox (`plugin_job_notifications`): the `NotifierActor` enqueues one row per
//! event and destination, claims due rows with a compare-and-set lease (`FOR UPDATE SKIP
//! LOCKED` on PostgreSQL) so that with several instances each row is delivered by one of them,
//! and deletes a row once it is delivered or given up, or reschedules it after a failure.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{StoreActor, begin_write};
use crate::Result;
use crate::time::{delta, to_millis};

/// One delivery to add to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub event_id: Uuid,
    pub event_type: String,
    pub url: String,
    pub body: String,
}

/// Adds deliveries to the outbox, due now, unless it already holds `max_rows` for their URL:
/// the outbox is bounded per destination, so a receiver that is down fills its own share and
/// not the others', and what does not fit is dropped. Answers the URLs of the rows dropped.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<String>>")]
pub struct EnqueueNotifications {
    pub rows: Vec<NewNotification>,
    pub max_rows: u64,
    pub now: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries to `url` for `instance_id` until `now + lease`: rows
/// whose `next_attempt_at` has come and which no live lease holds. Answers the claimed rows.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<NotificationModel>>")]
pub struct ClaimNotifications {
    pub instance_id: String,
    pub url: String,
    pub limit: u64,
    pub lease: Duration,
    pub now: DateTime<Utc>,
}

/// What became of one claimed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    /// The receiver answered 2xx: the row goes.
    Delivered,
    /// Failed; tried again at `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// Failed for the last time: the row goes.
    GiveUp,
}

/// Records the result of a delivery claimed by `instance_id`. Answers `false` when the claim
/// was no longer this instance's (its lease ran out and another instance took the row).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<bool>")]
pub struct FinishNotification {
    pub id: Uuid,
    pub instance_id: String,
    pub result: DeliveryResult,
}

/// How many deliveries the outbox holds.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<u64>")]
pub struct CountNotifications;

async fn enqueue(db: &DatabaseConnection, msg: EnqueueNotifications) -> Result<Vec<String>> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let mut room: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut dropped = Vec::new();
    let mut kept = Vec::with_capacity(msg.rows.len());
    for row in msg.rows {
        if !room.contains_key(&row.url) {
            let held = Notification::find()
                .filter(NotificationColumn::Url.eq(&row.url))
                .count(&txn)
                .await?;
            room.insert(row.url.clone(), msg.max_rows.saturating_sub(held));
        }
        match room.get_mut(&row.url) {
            Some(left) if *left > 0 => {
                *left -= 1;
                kept.push(row);
            }
            _ => dropped.push(row.url),
        }
    }
    let rows: Vec<NotificationActiveModel> = kept
        .into_iter()
        .map(|row| NotificationActiveModel {
            id: Set(Uuid::now_v7()),
            event_id: Set(row.event_id),
            event_type: Set(row.event_type),
            url: Set(row.url),
            body: Set(row.body),
            attempts: Set(0),
            next_attempt_at: Set(now),
            claimed_by: Set(None),
            claimed_until: Set(None),
            last_error: Set(None),
            created_at: Set(now),
        })
        .collect();
    // A row binds 11 values: 2,000 rows stay under SQLite's bind limit.
    for chunk in rows.chunks(2_000) {
        Notification::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(dropped)
}

async fn claim(db: &DatabaseConnection, msg: ClaimNotifications) -> Result<Vec<NotificationModel>> {
    let now = to_millis(msg.now);
    let until = now + delta(msg.lease);
    let txn = begin_write(db).await?;
    let unclaimed = Condition::any()
        .add(NotificationColumn::ClaimedUntil.is_null())
        .add(NotificationColumn::ClaimedUntil.lte(now));
    let mut due = Notification::find()
        .filter(NotificationColumn::Url.eq(&msg.url))
        .filter(NotificationColumn::NextAttemptAt.lte(now))
        .filter(unclaimed.clone())
        .order_by_asc(NotificationColumn::NextAttemptAt)
        .limit(msg.limit);
    if super::is_postgres(&txn) {
        // Other instances skip the rows this claim holds instead of waiting for them.
        due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = due.all(&txn).await?;
    let mut claimed = Vec::with_capacity(due.len());
    for mut row in due {
        // Compare-and-set: only a row still unclaimed is taken.
        let taken = Notification::update_many()
            .col_expr(
                NotificationColumn::ClaimedBy,
                Expr::value(msg.instance_id.clone()),
            )
            .col_expr(NotificationColumn::ClaimedUntil, Expr::value(until))
            .filter(NotificationColumn::Id.eq(row.id))
            .filter(unclaimed.clone())
            .exec(&txn)
            .await?
            .rows_affected;
        if taken == 1 {
            row.claimed_by = Some(msg.instance_id.clone());
            row.claimed_until = Some(until);
            claimed.push(row);
        }
    }
    txn.commit().await?;
    Ok(claimed)
}

async fn finish(db: &DatabaseConnection, msg: FinishNotification) -> Result<bool> {
    let mine = Condition::all()
        .add(NotificationColumn::Id.eq(msg.id))
        .add(NotificationColumn::ClaimedBy.eq(msg.instance_id));
    let moved = match msg.result {
        DeliveryResult::Delivered | DeliveryResult::GiveUp => {
            Notification::delete_many()
                .filter(mine)
                .exec(db)
                .await?
                .rows_affected
        }
        DeliveryResult::Retry { at, mut error } => {
            super::clean_text(&mut error);
            Notification::update_many()
                .col_expr(
                    NotificationColumn::Attempts,
                    Expr::col(NotificationColumn::Attempts).add(1),
                )
                .col_expr(
                    NotificationColumn::NextAttemptAt,
                    Expr::value(to_millis(at)),
                )
                .col_expr(NotificationColumn::ClaimedBy, Expr::value(None::<String>))
                .col_expr(
                    NotificationColumn::ClaimedUntil,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .col_expr(NotificationColumn::LastError, Expr::value(error))
                .filter(mine)
                .exec(db)
                .await?
                .rows_affected
        }
    };
    Ok(moved == 1)
}

async fn count(db: &DatabaseConnection, _msg: CountNotifications) -> Result<u64> {
    Ok(Notification::find().count(db).await?)
}

write_handlers! {
    EnqueueNotifications => enqueue,
    ClaimNotifications => claim,
    FinishNotification => finish,
}

read_handlers! {
    CountNotifications => count,
}
