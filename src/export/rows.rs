//! Reading an entity's rows a page at a time, on either database, as JSON values.
//!
//! One statement shape for both databases: the columns named by the entity, `CAST` to the type
//! the decoder asks for (PostgreSQL's `INTEGER` and `REAL` are 4-byte types that sqlx will not
//! decode as `i64`/`f64`), the company's rows after the last key seen, in key order.

use serde_json::Value;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::entities::{Entity, Kind};
use crate::store::{CompanyId, Ex, Result};

/// Rows fetched per statement: enough to keep round trips few, small enough to stay in memory.
pub(super) const PAGE: usize = 500;

/// One row: the entity's columns, in order, with their values.
pub(super) type JsonRow = Vec<(&'static str, Value)>;

/// A value of a key column, to resume after.
#[derive(Clone, Debug, PartialEq)]
enum KeyValue {
    Int(i64),
    Text(String),
}

/// Where a paged read of one entity stands.
#[derive(Debug)]
pub(super) struct Pager<'e> {
    entity: &'e Entity,
    /// An extra condition on `$2` (e.g. `customer_id = $2`), for the per-customer export.
    filter: Option<(&'static str, i64)>,
    after: Option<Vec<KeyValue>>,
    done: bool,
}

impl<'e> Pager<'e> {
    /// All rows of the company.
    pub(super) fn new(entity: &'e Entity) -> Self {
        Self {
            entity,
            filter: None,
            after: None,
            done: false,
        }
    }

    /// Only rows that meet `condition`, a SQL condition on the parameter `$2` bound to `value`.
    pub(super) fn filtered(entity: &'e Entity, condition: &'static str, value: i64) -> Self {
        Self {
            filter: Some((condition, value)),
            ..Self::new(entity)
        }
    }

    /// The next page; empty once every row was read.
    pub(super) async fn next(
        &mut self,
        ex: &mut Ex<'_>,
        company: CompanyId,
    ) -> Result<Vec<JsonRow>> {
        if self.done {
            return Ok(Vec::new());
        }
        let sql = self.sql();
        let mut binds = Vec::with_capacity(3);
        if let Some((_, v)) = self.filter {
            binds.push(KeyValue::Int(v));
        }
        binds.extend(self.after.iter().flatten().cloned());
        let rows = match ex {
            Ex::Sqlite(c) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(company.0);
                for b in binds {
                    q = match b {
                        KeyValue::Int(v) => q.bind(v),
                        KeyValue::Text(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(&mut **c).await?;
                rows.iter()
                    .map(|r| decode(r, self.entity))
                    .collect::<Result<Vec<_>, _>>()?
            }
            Ex::Postgres(c) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(company.0);
                for b in binds {
                    q = match b {
                        KeyValue::Int(v) => q.bind(v),
                        KeyValue::Text(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(&mut **c).await?;
                rows.iter()
                    .map(|r| decode(r, self.entity))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        if rows.len() < PAGE {
            self.done = true;
        }
        if let Some(last) = rows.last() {
            self.after = Some(key_of(self.entity, last));
        }
        Ok(rows)
    }

    fn sql(&self) -> String {
        let e = self.entity;
        let select: Vec<String> = e
            .columns
            .iter()
            .map(|c| match c.kind {
                Kind::Int => format!("CAST({0} AS BIGINT) AS {0}", c.name),
                Kind::Real => format!("CAST({0} AS DOUBLE PRECISION) AS {0}", c.name),
                Kind::Text | Kind::Bool | Kind::Json | Kind::Words => c.name.to_owned(),
            })
            .collect();
        let mut sql = format!(
            "SELECT {} FROM {} WHERE {} = $1",
            select.join(", "),
            e.table,
            e.scope
        );
        let mut next = 2;
        if let Some((condition, _)) = self.filter {
            sql.push_str(&format!(" AND ({condition})"));
            next = 3;
        }
        if self.after.is_some() {
            let params: Vec<String> = (0..e.key.len()).map(|i| format!("${}", next + i)).collect();
            // Row values compare lexicographically in both SQLite (3.15+) and PostgreSQL.
            sql.push_str(&format!(
                " AND ({}) > ({})",
                e.key.join(", "),
                params.join(", ")
            ));
        }
        sql.push_str(&format!(" ORDER BY {} LIMIT {PAGE}", e.key.join(", ")));
        sql
    }
}

/// The key of `row`, to resume after it.
fn key_of(entity: &Entity, row: &JsonRow) -> Vec<KeyValue> {
    entity
        .key
        .iter()
        .map(|k| {
            match row.iter().find(|(name, _)| name == k).map(|(_, v)| v) {
                Some(Value::Number(n)) => KeyValue::Int(n.as_i64().unwrap_or(i64::MAX)),
                Some(Value::String(s)) => KeyValue::Text(s.clone()),
                // Key columns are non-null integer or text columns of the entity, which the
                // entity list's test checks against the schema.
                other => unreachable!("key {k} of {} is {other:?}", entity.table),
            }
        })
        .collect()
}

/// One database row as the entity's JSON row.
fn decode<R>(row: &R, entity: &Entity) -> Result<JsonRow, sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut out = Vec::with_capacity(entity.columns.len());
    for (i, c) in entity.columns.iter().enumerate() {
        let value = match c.kind {
            Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
            Kind::Real => row.try_get::<Option<f64>, _>(i)?.map(Value::from),
            Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::from),
            Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::from),
            Kind::Json => row
                .try_get::<Option<String>, _>(i)?
                .map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t))),
            Kind::Words => row
                .try_get::<Option<String>, _>(i)?
                .map(|t| t.split_whitespace().map(Value::from).collect()),
        };
        out.push((c.name, value.unwrap_or(Value::Null)));
    }
    Ok(out)
}

/// Writes `row` as one JSON object, columns in order, and a newline.
pub(super) fn write_line(out: &mut Vec<u8>, row: &[(&str, Value)]) {
    out.push(b'{');
    for (i, (name, value)) in row.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Serialising a string or a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, name);
        out.push(b':');
        let _ = serde_json::to_writer(&mut *out, value);
    }
    out.extend_from_slice(b"}\n");
}

/// `row` as a JSON object (for the per-customer export).
pub(super) fn to_object(row: JsonRow) -> serde_json::Map<String, Value> {
    row.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
