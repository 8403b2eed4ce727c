//! Request bodies and query strings into the command layer's own argument types (the ones the
//! MCP tools take), so a field added there is taken here with no new code. Fields are checked
//! against the type's JSON Schema first, so unknown and missing ones are worded as everywhere.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tracker::{Error, Result};

/// The JSON Schema of `T`, as a JSON object.
pub(crate) fn schema<T: schemars::JsonSchema>() -> Map<String, Value> {
    match serde_json::to_value(schemars::schema_for!(T)) {
        Ok(Value::Object(o)) => o,
        _ => Map::new(),
    }
}

/// [`schema`], made once per type: requests are checked against it on every call.
fn cached_schema<T: schemars::JsonSchema + 'static>() -> Arc<Map<String, Value>> {
    type Made = Mutex<HashMap<TypeId, Arc<Map<String, Value>>>>;
    static MADE: OnceLock<Made> = OnceLock::new();
    let mut made = MADE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    made.entry(TypeId::of::<T>())
        .or_insert_with(|| Arc::new(schema::<T>()))
        .clone()
}

/// `T` from a request body (a JSON object; empty means `{}`), with `item` (from the path) added.
///
/// # Errors
///
/// [`Error::Invalid`] for a body that is not a JSON object, that names the item the path
/// names, or that does not fit `T`.
pub(crate) fn body<T>(bytes: &[u8], item: Option<(&str, &str)>) -> Result<T>
where
    T: DeserializeOwned + schemars::JsonSchema + 'static,
{
    let mut obj = if bytes.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(o)) => o,
            Ok(_) => {
                return Err(Error::Invalid(
                    "the request body must be a JSON object".into(),
                ))
            }
            Err(e) => return Err(Error::Invalid(format!("the request body is not JSON: {e}"))),
        }
    };
    if let Some((field, value)) = item {
        if obj.contains_key(field) {
            return Err(Error::bad_field(field, "named by the path, not the body"));
        }
        obj.insert(field.to_string(), Value::String(value.to_string()));
    }
    fit(obj)
}

/// `T` from a query string's pairs: each value is taken as the type `T`'s schema gives its
/// field (a boolean, an integer, a list of comma-separated values, else text).
///
/// # Errors
///
/// [`Error::Invalid`] for a value that is not of its field's type, or fields that do not fit `T`.
pub(crate) fn query<T>(pairs: Vec<(String, String)>) -> Result<T>
where
    T: DeserializeOwned + schemars::JsonSchema + 'static,
{
    let schema = cached_schema::<T>();
    let props = schema.get("properties").and_then(Value::as_object);
    let mut obj = Map::new();
    for (k, v) in pairs {
        let kind = props
            .and_then(|p| p.get(&k))
            .map(type_of)
            .unwrap_or("string");
        let value = match kind {
            "boolean" => match v.as_str() {
                "" | "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => return Err(Error::bad_field(&k, format!("{v:?}: use true or false"))),
            },
            "integer" => match v.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => return Err(Error::bad_field(&k, format!("{v:?}: not a whole number"))),
            },
            "array" => Value::Array(
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            _ => Value::String(v),
        };
        obj.insert(k, value);
    }
    fit(obj)
}

/// The JSON type a property's schema gives (the first that is not `null`).
fn type_of(prop: &Value) -> &str {
    match prop.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "string",
    }
}

/// `obj` as `T`, unknown and missing fields first refused by name.
fn fit<T>(obj: Map<String, Value>) -> Result<T>
where
    T: DeserializeOwned + schemars::JsonSchema + 'static,
{
    tracker::command::from_object(
        obj,
        &cached_schema::<T>(),
        "the request does not fit its schema",
    )
}
