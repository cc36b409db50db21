//! Argument and column values, and result rows, of the database layer.

use crate::store::{Result, StoreError};
use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::sync::Arc;

/// One argument or column value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl TryFrom<ValueRef<'_>> for Value {
    type Error = StoreError;
    fn try_from(v: ValueRef<'_>) -> Result<Value> {
        Ok(match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Int(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(
                String::from_utf8(t.to_vec())
                    .map_err(|_| StoreError::Corrupt("text column is not UTF-8".into()))?,
            ),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        })
    }
}

/// A Rust value that can be bound as an argument.
pub(crate) trait Bind {
    fn into_value(self) -> Value;
}

macro_rules! bind_int {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            fn into_value(self) -> Value {
                Value::Int(i64::from(self))
            }
        }
        impl Bind for &$t {
            fn into_value(self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
bind_int!(i64, i32, u32, u16, u8, bool);

impl Bind for f64 {
    fn into_value(self) -> Value {
        Value::Real(self)
    }
}
impl Bind for String {
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}
impl Bind for &String {
    fn into_value(self) -> Value {
        Value::Text(self.clone())
    }
}
impl Bind for &str {
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}
impl Bind for Vec<u8> {
    fn into_value(self) -> Value {
        Value::Blob(self)
    }
}
impl Bind for &[u8] {
    fn into_value(self) -> Value {
        Value::Blob(self.to_vec())
    }
}
impl Bind for &Vec<u8> {
    fn into_value(self) -> Value {
        Value::Blob(self.clone())
    }
}
impl<T: Bind> Bind for Option<T> {
    fn into_value(self) -> Value {
        self.map_or(Value::Null, Bind::into_value)
    }
}
impl<'a, T> Bind for &'a Option<T>
where
    &'a T: Bind,
{
    fn into_value(self) -> Value {
        self.as_ref().map_or(Value::Null, Bind::into_value)
    }
}

/// A Rust value a column can be read as. Strict: no silent conversion between text and
/// numbers, NULL only into `Option`.
pub(crate) trait Decode: Sized {
    fn decode(v: &Value) -> std::result::Result<Self, String>;
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

impl Decode for i64 {
    fn decode(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", kind(other))),
        }
    }
}
impl Decode for bool {
    fn decode(v: &Value) -> std::result::Result<Self, String> {
        i64::decode(v).map(|i| i != 0)
    }
}
impl Decode for f64 {
    fn decode(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {}", kind(other))),
        }
    }
}
impl Decode for String {
    fn decode(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", kind(other))),
        }
    }
}
impl Decode for Vec<u8> {
    fn decode(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(format!("expected a blob, found {}", kind(other))),
        }
    }
}
impl<T: Decode> Decode for Option<T> {
    fn decode(v: &Value) -> std::result::Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            other => T::decode(other).map(Some),
        }
    }
}

/// One result row, owned.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    cols: Arc<[String]>,
    vals: Vec<Value>,
}

/// A column by name or by position.
pub(crate) trait ColumnIndex: std::fmt::Display {
    fn position(&self, cols: &[String]) -> Option<usize>;
}
impl ColumnIndex for &str {
    fn position(&self, cols: &[String]) -> Option<usize> {
        cols.iter().position(|c| c == self)
    }
}
impl ColumnIndex for usize {
    fn position(&self, cols: &[String]) -> Option<usize> {
        (*self < cols.len()).then_some(*self)
    }
}

impl Row {
    pub(super) fn new(cols: Arc<[String]>, vals: Vec<Value>) -> Row {
        Row { cols, vals }
    }

    pub(crate) fn try_get<T: Decode, I: ColumnIndex>(&self, col: I) -> Result<T> {
        let i = col
            .position(&self.cols)
            .ok_or_else(|| StoreError::Corrupt(format!("no column {col} in the result")))?;
        T::decode(&self.vals[i]).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
    }
}
