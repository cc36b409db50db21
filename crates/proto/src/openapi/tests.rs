use super::*;

fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_route_of_the_table_is_in_the_document_with_its_method() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut count = 0;
    for r in ROUTES {
        let op = &doc["paths"][r.pattern][method_key(r.method)];
        assert!(op.is_object(), "{} {} missing", r.method, r.pattern);
        for p in r.params() {
            assert!(
                op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|q| q["name"] == p && q["in"] == "path"),
                "{} lacks path parameter {p}",
                r.pattern
            );
        }
        count += 1;
    }
    let in_doc: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(in_doc, count, "the document has operations the table lacks");
}

#[test]
fn every_reference_resolves_and_every_schema_name_is_legal() {
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for r in found {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} points outside components/schemas"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{name:?} is not a legal component name"
        );
    }
}

#[test]
fn callers_are_authenticated_as_the_table_says() {
    let doc = document();
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for r in ROUTES {
        let sec = doc["paths"][r.pattern][method_key(r.method)]["security"]
            .as_array()
            .unwrap();
        assert_eq!(
            sec.is_empty(),
            r.access == Access::Anonymous,
            "{}",
            r.pattern
        );
        for alt in sec {
            for name in alt.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{name} undefined");
            }
        }
        let responses = &doc["paths"][r.pattern][method_key(r.method)]["responses"];
        if r.access != Access::Anonymous {
            assert!(responses.get("401").is_some(), "{} lacks 401", r.pattern);
        }
        assert!(responses.get("default").is_some());
    }
}

#[test]
fn operation_ids_are_unique_snake_case() {
    let mut ids: Vec<String> = ROUTES.iter().map(operation_id).collect();
    assert!(ids.contains(&"login_start".to_string()));
    assert!(ids.contains(&"open_api".to_string()));
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n);
}

#[test]
fn the_refusal_shape_lists_every_error_code() {
    let doc = document();
    let refusal = &doc["components"]["schemas"][REFUSAL];
    assert_eq!(refusal["required"], json!(["error", "message"]));
    let text = doc["components"]["schemas"].to_string();
    for c in ErrorCode::ALL {
        assert!(text.contains(&format!("\"{c}\"")), "{c} missing");
    }
}

#[test]
fn bodies_and_answers_are_the_wire_types() {
    let doc = document();
    let start = &doc["paths"]["/v1/login/start"]["post"];
    assert_eq!(
        start["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginStart"
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["LoginStart"]["additionalProperties"], false);
    let events = &doc["paths"]["/v1/admin/events"]["get"]["parameters"];
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "type" && p["in"] == "query")
    );
    assert!(doc["paths"]["/v1/admin/users/{name}"]["delete"]["responses"]["204"].is_object());
    let otp = &doc["paths"]["/v1/login/{tx}/otp"]["post"]["responses"]["200"];
    assert_eq!(
        otp["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginStepResultWithOffline"
    );
    assert!(schemas.get("LoginStartResultWithOffline").is_some());
}
