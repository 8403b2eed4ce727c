//! `GET /api/v1/openapi.json`: an OpenAPI 3.1 document of the API, made from the same types the
//! routes parse and answer with (the command layer's argument types and the `--json` shapes),
//! so it cannot drift from them.

use serde_json::{json, Map, Value};
use tracker::command::{
    claim, comment, dep, done, list, log, new_item, plan, release, renew, status, update,
};
use tracker::json::{
    ErrorJson, ItemJson, ItemsJson, OpJson, OpsJson, PlanJson, ShowJson, StatusJson,
};

use super::args::schema;

/// The document.
pub(crate) fn document() -> Value {
    let c = Components::default();
    let item = c.add::<ItemJson>("ItemJson");
    let paths = json!({
        "/api/v1/items": {
            "get": c.op("list", "Items (`list`)", query::<list::Args>(&[]), None, 200, c.add_ref::<ItemsJson>("ItemsJson")),
            "post": c.op("new", "Create an item (`new`)", vec![], c.body::<new_item::Args>("NewArgs", &[]), 201, item.clone()),
        },
        "/api/v1/items/{ref}": {
            "get": c.op("show", "One item (`show`)", vec![item_param()], None, 200, c.add_ref::<ShowJson>("ShowJson")),
            "patch": c.op("update", "Change an item (`update`)", vec![item_param()], c.body::<update::Args>("UpdateArgs", &["item"]), 200, item.clone()),
        },
        "/api/v1/items/{ref}/claim": { "post": c.op("claim", "Take a lease (`claim`)", vec![item_param()], c.body::<claim::Args>("ClaimArgs", &["item"]), 200, item.clone()) },
        "/api/v1/items/{ref}/renew": { "post": c.op("renew", "Extend the lease (`renew`)", vec![item_param()], c.body::<renew::Args>("RenewArgs", &["item"]), 200, item.clone()) },
        "/api/v1/items/{ref}/release": { "post": c.op("release", "Give the lease back (`release`)", vec![item_param()], c.body::<release::Args>("ReleaseArgs", &["item"]), 200, item.clone()) },
        "/api/v1/items/{ref}/done": { "post": c.op("done", "Mark done (`done`)", vec![item_param()], c.body::<done::Args>("DoneArgs", &["item"]), 200, item.clone()) },
        "/api/v1/items/{ref}/comment": { "post": c.op("comment", "Append a comment (`comment`)", vec![item_param()], c.body::<comment::Args>("CommentArgs", &["item"]), 200, item.clone()) },
        "/api/v1/items/{ref}/deps": { "post": c.op("dep_add", "Add a blocker (`dep add`)", vec![item_param()], c.body::<dep::Args>("DepArgs", &["item"]), 200, item.clone()) },
        "/api/v1/items/{ref}/deps/{blocker}": { "delete": c.op("dep_rm", "Remove a blocker (`dep rm`)", vec![item_param(), path_param("blocker", "The blocker to remove")], None, 200, item.clone()) },
        "/api/v1/claim-next": { "post": c.op("claim_next", "Claim the best ready item (`claim --next`); 404 when nothing is ready", vec![], c.body::<claim::NextArgs>("ClaimNextArgs", &[]), 200, item.clone()) },
        "/api/v1/plan": { "post": c.op("plan", "Create many items in one transaction, all or none (`new --plan`)", vec![], c.body::<plan::Args>("PlanArgs", &[]), 201, c.add_ref::<PlanJson>("PlanJson")) },
        "/api/v1/log": { "get": c.op("log", "The ops log, oldest first (`log`)", query::<log::Args>(&[]), None, 200, c.add_ref::<OpsJson<'static>>("OpsJson")) },
        "/api/v1/status": { "get": c.op("status", "The board's counts and claims (`status`)", query::<status::Args>(&[]), None, 200, c.add_ref::<StatusJson>("StatusJson")) },
        "/api/v1/events": { "get": events(&c) },
        "/api/v1/openapi.json": { "get": {
            "operationId": "openapi", "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }},
    });
    json!({
        "openapi": "3.1.0",
        "info": {"title": "tracker serve", "version": env!("CARGO_PKG_VERSION"),
                 "description": "The tracker's JSON API: bodies and results shaped as `--json`; errors are the error object. Every request needs `Authorization: Bearer TOKEN`; every write names its actor in `X-Tracker-As`."},
        "paths": paths,
        "components": {
            "schemas": c.schemas.into_inner(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    })
}

fn events(c: &Components) -> Value {
    let op = c.add_ref::<OpJson<'static>>("OpJson");
    let mut parameters = query::<super::events::Args>(&[]);
    parameters.push(json!({
        "name": "Last-Event-ID", "in": "header", "required": false,
        "description": "Go on after the op of this sequence number (the `id` of the last event received): a client that reconnects misses nothing. Takes precedence over `since`.",
        "schema": {"type": "integer", "minimum": 0}
    }));
    json!({
        "operationId": "events",
        "summary": "Server-Sent Events: `event: op` (id = the op's seq, data = the op as `log --json`) for every op any process commits, in order and none skipped, from the next one committed, from `since`, or after `Last-Event-ID`",
        "parameters": parameters,
        "responses": {
            "200": {"description": "An event stream", "content": {"text/event-stream": {"schema": op}}},
            "400": c.error("A `since` or `Last-Event-ID` that is not a sequence number"),
            "401": c.error("No token, or a wrong one"),
        }
    })
}

fn item_param() -> Value {
    path_param(
        "ref",
        "The item: its number (42 or #42), or a unique ULID prefix",
    )
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

/// The query parameters of `T`'s fields, less `skip`.
fn query<T: schemars::JsonSchema>(skip: &[&str]) -> Vec<Value> {
    let s = schema::<T>();
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    props
        .into_iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(name, mut prop)| {
            let description = prop.get("description").cloned().unwrap_or(Value::Null);
            if let Some(o) = prop.as_object_mut() {
                o.remove("description");
            }
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": prop})
        })
        .collect()
}

/// The schemas the document names, under `#/components/schemas/`.
#[derive(Default)]
struct Components {
    schemas: std::cell::RefCell<Map<String, Value>>,
}

impl Components {
    /// Adds `T`'s schema (and the definitions it uses) as `name`; returns a reference to it.
    fn add<T: schemars::JsonSchema>(&self, name: &str) -> Value {
        let mut s = schema::<T>();
        if let Some(Value::Object(defs)) = s.remove("$defs") {
            for (k, mut v) in defs {
                rebase(&mut v);
                self.schemas.borrow_mut().insert(k, v);
            }
        }
        s.remove("$schema");
        let mut v = Value::Object(s);
        rebase(&mut v);
        self.schemas.borrow_mut().insert(name.to_string(), v);
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn add_ref<T: schemars::JsonSchema>(&self, name: &str) -> Value {
        self.add::<T>(name)
    }

    /// A request body of `T`'s schema, without the fields the path gives (`skip`).
    fn body<T: schemars::JsonSchema>(&self, name: &str, skip: &[&str]) -> Option<Value> {
        self.add::<T>(name);
        if let Some(Value::Object(s)) = self.schemas.borrow_mut().get_mut(name) {
            if let Some(Value::Object(p)) = s.get_mut("properties") {
                p.retain(|k, _| !skip.contains(&k.as_str()));
            }
            if let Some(Value::Array(r)) = s.get_mut("required") {
                r.retain(|k| !skip.iter().any(|s| k == s));
            }
        }
        Some(
            json!({"required": false, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}}),
        )
    }

    fn error(&self, description: &str) -> Value {
        let e = self.add::<ErrorJson>("ErrorJson");
        json!({"description": description, "content": {"application/json": {"schema": e}}})
    }

    /// One operation, with the error answers every operation can give.
    fn op(
        &self,
        id: &str,
        summary: &str,
        parameters: Vec<Value>,
        body: Option<Value>,
        ok: u16,
        result: Value,
    ) -> Value {
        let mut responses = Map::new();
        responses.insert(
            ok.to_string(),
            json!({"description": "Done as asked", "content": {"application/json": {"schema": result}}}),
        );
        for (code, what) in [
            (400, "Invalid input (kind invalid), or a write without X-Tracker-As"),
            (401, "No token, or a wrong one (kind unauthorized)"),
            (403, "A Host or Origin this server does not answer, or a write to a read-only server (kind forbidden)"),
            (404, "No such item, or nothing ready (kind not_found)"),
            (409, "Conflict: another holder, a stale version or token, a cycle (kind conflict)"),
            (503, "Busy: the tracker stayed locked, or a wait ran out (kind busy)"),
            (500, "Data error (kind data) or another failure"),
        ] {
            responses.insert(code.to_string(), self.error(what));
        }
        let mut op = json!({"operationId": id, "summary": summary, "parameters": parameters, "responses": responses});
        if let Some(b) = body {
            op["requestBody"] = b;
        }
        op
    }
}

/// Rewrites `#/$defs/X` references to `#/components/schemas/X`.
fn rebase(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "$ref" {
                    if let Value::String(s) = x {
                        *s = s.replace("#/$defs/", "#/components/schemas/");
                    }
                } else {
                    rebase(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rebase),
        _ => {}
    }
}
