//! Rows that each carry values of their own, for one `UPDATE … FROM (VALUES …) AS v`: a batch
//! of pointer moves or outcomes is one statement per chunk however much its rows differ. Both
//! databases name the columns of a `VALUES` list `column1`, `column2`, …, which is how the
//! statement refers to them.
//!
//! The rows are matched by id, and the ids are listed as well (`id IN (…) AND id = v.column1`):
//! with the join alone, PostgreSQL's planner hashed the `VALUES` and scanned the whole jobs table
//! (a `Seq Scan` per claim, seen with `auto_explain` at 100,000 jobs) or walked every live run;
//! the list makes both databases find the rows by their primary key.

use sea_orm::EntityTrait;
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait as _, IntoIden, Query, TableRef, UpdateStatement, Value, ValueTuple,
};
use uuid::Uuid;

const ALIAS: &str = "v";

/// `UPDATE <entity> … FROM (VALUES …) AS v WHERE id IN (…) AND id = v.column1`: each row is
/// the id of the row it updates (`column1`) and its own values (`column2`, …). The caller sets
/// the columns (from [`given`]) and adds its own conditions.
pub(super) fn update_by_id<E: EntityTrait>(
    id: E::Column,
    rows: impl IntoIterator<Item = (Uuid, Vec<Value>)>,
) -> UpdateStatement {
    let mut ids = Vec::new();
    let rows: Vec<ValueTuple> = rows
        .into_iter()
        .map(|(row_id, values)| {
            ids.push(row_id);
            let mut row = Vec::with_capacity(values.len() + 1);
            row.push(Value::from(row_id));
            row.extend(values);
            ValueTuple::Many(row)
        })
        .collect();
    let mut update = Query::update();
    update
        .table(E::default())
        .from(TableRef::ValuesList(rows, Alias::new(ALIAS).into_iden()))
        .and_where(Expr::col((E::default(), id)).is_in(ids))
        .and_where(Expr::col((E::default(), id)).eq(given(1)));
    update
}

/// The `n`th value (from 1, the id) of the row an updated row is matched with.
pub(super) fn given(n: usize) -> Expr {
    Expr::col((Alias::new(ALIAS), Alias::new(format!("column{n}"))))
}
