//! Rows that each carry values of their own, for one `UPDATE … FROM (VALUES …) AS v`: a batch
//! of pointer moves or outcomes is one statement per chunk however much its rows differ. Both
//! databases name the columns of a `VALUES` list `column1`, `column2`, …, which is how the
//! statement refers to them.
//!
//! The rows are matched by id, and the ids are listed as well (`id IN (…) AND id = v.column1`):
//! with the join alone, PostgreSQL's planner hashed the `VALUES` and scanned the whole jobs table
//! (a `Seq Scan` per claim, seen with `auto_explain` at 100,000 jobs) or walked every live run;
//! the list makes both databases find the rows by their primary key.

use sea_orm::sea_query::{
    Alias, Condition, Expr, ExprTrait as _, IntoColumnRef, IntoIden, TableRef, Value, ValueTuple,
};
use uuid::Uuid;

const ALIAS: &str = "v";

/// The rows, as the table `v` of an `UPDATE … FROM`.
pub(super) fn table(rows: impl IntoIterator<Item = Vec<Value>>) -> TableRef {
    let rows = rows.into_iter().map(ValueTuple::Many).collect();
    TableRef::ValuesList(rows, Alias::new(ALIAS).into_iden())
}

/// The `n`th value (from 1) of the row an updated row is matched with.
pub(super) fn given(n: usize) -> Expr {
    Expr::col((Alias::new(ALIAS), Alias::new(format!("column{n}"))))
}

/// The updated table's rows that the `VALUES` rows name: `id` (a column of that table) is one of
/// `ids` and equals the row's first value.
pub(super) fn by_id(
    id: impl IntoColumnRef + Clone,
    ids: impl IntoIterator<Item = Uuid>,
) -> Condition {
    Condition::all()
        .add(Expr::col(id.clone()).is_in(ids))
        .add(Expr::col(id).eq(given(1)))
}
