//! The OpenAPI 3.1 description of latchkeyd's HTTP API, built from the route table
//! ([`crate::routes::ROUTES`]) and the JSON Schemas of the wire types, so the two cannot
//! drift: a route without a description or a type without a schema does not compile.
//! latchkeyd serves it at `GET /openapi.json`; `scripts/schemathesis` tests a live server
//! against it.

mod operations;

use crate::ErrorCode;
use crate::routes::{Access, HttpMethod, ROUTES, Route};
use operations::{Answer, OpDoc, describe, path_param};
use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

/// Where schemas live in the document; `$ref`s point here.
const SCHEMAS: &str = "/components/schemas";
/// The refusal shape of docs/api.md, by name in `components/schemas`.
const REFUSAL: &str = "Refusal";

/// The whole document. Building it walks every type; latchkeyd builds it on the first
/// request and serves those bytes from then on.
pub fn document() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = SCHEMAS.into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for route in ROUTES {
        let doc = describe(route.op, &mut g);
        let op = operation(route, doc, &mut g);
        let item = paths
            .entry(route.pattern.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(method_key(route.method).to_string(), op);
        }
    }
    let code = g.subschema_for::<ErrorCode>();
    let mut schemas = g.take_definitions(true);
    schemas.insert(
        REFUSAL.into(),
        json!({
            "type": "object",
            "description": "Every 4xx/5xx a route gives: a stable code and one sentence for people.",
            "required": ["error", "message"],
            "properties": { "error": code.to_value(), "message": { "type": "string" } }
        }),
    );
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "latchkeyd",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted MFA for machine logins. See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "adminKey": { "type": "http", "scheme": "bearer", "description": "An admin API key (`lka_…`)." },
                "machineKey": { "type": "http", "scheme": "bearer", "description": "A machine's API key from its join." },
                "machineCert": { "type": "mutualTLS", "description": "The TLS client certificate a machine joined with." },
                "appKey": { "type": "http", "scheme": "bearer", "description": "A token app's key from its registration." },
            },
        },
    })
}

fn method_key(m: HttpMethod) -> &'static str {
    match m {
        HttpMethod::Get => "get",
        HttpMethod::Post => "post",
        HttpMethod::Patch => "patch",
        HttpMethod::Delete => "delete",
    }
}

fn operation_id(route: &Route) -> String {
    // `Op`'s Debug is its variant name: `LoginStart` → `login_start`.
    let name = format!("{:?}", route.op);
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn operation(route: &Route, doc: OpDoc, g: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    op.insert("operationId".into(), json!(operation_id(route)));
    op.insert("summary".into(), json!(doc.summary));
    op.insert("tags".into(), json!([route.access.as_str()]));
    op.insert("security".into(), security(route.access));
    let mut params: Vec<Value> = route
        .params()
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "schema": path_param(route.op, name, g).to_value(),
            })
        })
        .collect();
    if let Some(q) = &doc.query {
        params.extend(query_params(q));
    }
    if !params.is_empty() {
        op.insert("parameters".into(), Value::Array(params));
    }
    if let Some(body) = &doc.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": { "application/json": { "schema": body.as_value() } }
            }),
        );
    }
    op.insert("responses".into(), responses(route, &doc));
    Value::Object(op)
}

fn security(access: Access) -> Value {
    match access {
        Access::Anonymous => json!([]),
        Access::Admin => json!([{ "adminKey": [] }]),
        Access::Machine => json!([{ "machineKey": [] }, { "machineCert": [] }]),
        Access::App => json!([{ "appKey": [] }]),
    }
}

/// One query parameter per property of the query type's (inlined) object schema.
fn query_params(q: &Schema) -> Vec<Value> {
    let required: Vec<&str> = q
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = q.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, schema)| {
            let mut schema = schema.clone();
            let description = schema.as_object_mut().and_then(|s| s.remove("description"));
            let mut p = json!({
                "name": name, "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": schema,
            });
            if let (Some(d), Some(p)) = (description, p.as_object_mut()) {
                p.insert("description".into(), d);
            }
            p
        })
        .collect()
}

/// What a route's own refusal means (docs/api.md has the detail per route).
fn refusal_reason(status: u16) -> &'static str {
    match status {
        401 => "the one-time token or code in the body is not valid",
        404 => "no such user, token, machine, policy or transaction",
        409 => "it exists already",
        429 => "rate-limited: try again later",
        _ => "see docs/api.md",
    }
}

fn refusal() -> Value {
    json!({ "content": { "application/json": { "schema": { "$ref": format!("#{SCHEMAS}/{REFUSAL}") } } } })
}

fn responses(route: &Route, doc: &OpDoc) -> Value {
    let mut out = Map::new();
    let ok = match &doc.answer {
        Answer::Json(s) => json!({
            "description": "success",
            "content": { "application/json": { "schema": s.as_value() } }
        }),
        Answer::Text => json!({
            "description": "success",
            "content": { "text/plain": { "schema": { "type": "string" } } }
        }),
        Answer::Empty => json!({ "description": "done, no body" }),
    };
    out.insert(doc.status.to_string(), ok);
    if route.op == crate::routes::Op::Readyz {
        out.insert(
            "503".into(),
            json!({
                "description": "not ready (shutting down, database unavailable)",
                "content": { "application/json": { "schema": json_schema!({
                    "type": "object", "required": ["status"],
                    "properties": { "status": { "type": "string" } }
                }).to_value() } }
            }),
        );
    }
    let mut refusals: Vec<(u16, &str)> = Vec::new();
    if route.access != Access::Anonymous {
        refusals.push((401, "no credential, or one the server does not know"));
        refusals.push((403, "a credential of the wrong kind"));
    }
    if doc.body.is_some() {
        refusals.push((400, "the body is not JSON or a field is wrong"));
        refusals.push((408, "the body did not arrive in time"));
        refusals.push((413, "the body is over the limit"));
        refusals.push((415, "the body is not sent as application/json"));
    } else if doc.query.is_some() || route.params().next().is_some() {
        refusals.push((400, "a parameter is wrong"));
    }
    for &status in doc.refusals {
        refusals.push((status, refusal_reason(status)));
    }
    refusals.sort_unstable();
    refusals.dedup_by_key(|r| r.0);
    for (status, why) in refusals {
        let mut r = refusal();
        if let Some(r) = r.as_object_mut() {
            r.insert("description".into(), json!(why));
        }
        out.insert(status.to_string(), r);
    }
    let mut default = refusal();
    if let Some(d) = default.as_object_mut() {
        d.insert(
            "description".into(),
            json!("any other refusal (e.g. 503 `store_unavailable`), same shape"),
        );
    }
    out.insert("default".into(), default);
    Value::Object(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
