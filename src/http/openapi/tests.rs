use std::collections::BTreeSet;
use std::path::Path;

use super::builder::Access;
use super::*;

/// `text` without `//` comments (string literals kept whole).
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                out.extend(chars.next());
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The body of the function whose signature starts with `signature`.
fn function_body(text: &str, signature: &str) -> String {
    let start = text
        .find(signature)
        .unwrap_or_else(|| panic!("{signature} not found"));
    let open = start + text[start..].find('{').expect("function body");
    let close = matching(text, open);
    text[open + 1..close].to_owned()
}

/// The index of the bracket closing the one at `open` (`(` or `{`), strings skipped.
fn matching(text: &str, open: usize) -> usize {
    let bytes = text.as_bytes();
    let (up, down) = match bytes[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        other => panic!("not a bracket: {}", char::from(other)),
    };
    let mut depth = 0;
    let mut in_string = false;
    let mut i = open;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            if b == b'\\' {
                i += 1;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == up {
            depth += 1;
        } else if b == down {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
        i += 1;
    }
    panic!("unbalanced brackets")
}

/// The first string literal of `text`.
fn first_string(text: &str) -> String {
    let start = text.find('"').expect("a string literal") + 1;
    let end = start + text[start..].find('"').expect("its end");
    text[start..end].to_owned()
}

/// (METHOD, path) of every `.route("path", get(..).post(..))` in `text`.
fn routes(text: &str, prefix: &str) -> BTreeSet<(String, String)> {
    const METHODS: [&str; 7] = ["get", "post", "patch", "put", "delete", "head", "options"];
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(".route(") {
        let open = at + ".route".len();
        let close = matching(rest, open);
        let args = &rest[open + 1..close];
        let path = first_string(args);
        let handlers = &args[args.find(',').expect("a handler") + 1..];
        let mut methods = 0;
        for (i, _) in handlers.match_indices('(') {
            let before = &handlers[..i];
            let word_start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            let word = &before[word_start..];
            if METHODS.contains(&word) {
                let full = if path == "/" && !prefix.is_empty() {
                    prefix.to_owned()
                } else {
                    format!("{prefix}{path}")
                };
                found.insert((word.to_uppercase(), full));
                methods += 1;
            }
        }
        assert!(methods > 0, "no method found in .route({args})");
        rest = &rest[close..];
    }
    found
}

/// The statement `let name = ...;` in `body`, and where it is.
fn let_statement(body: &str, name: &str) -> (usize, usize) {
    let start = body
        .find(&format!("let {name} = "))
        .unwrap_or_else(|| panic!("no `let {name} = ` for a nested router"));
    let mut depth = 0i32;
    for (i, c) in body[start..].char_indices() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' => depth -= 1,
            ';' if depth == 0 => return (start, start + i + 1),
            _ => {}
        }
    }
    panic!("`let {name}` does not end")
}

/// Every route `router()` registers, read from the source.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
    let read = |file: &str| {
        strip_comments(
            &std::fs::read_to_string(dir.join(file))
                .unwrap_or_else(|e| panic!("read src/http/{file}: {e}")),
        )
    };
    let router = function_body(&read("mod.rs"), "pub fn router(");
    let ui = function_body(&read("ui/mod.rs"), "pub fn routes(");
    for unknown in [".merge(", ".nest_service(", ".route_service("] {
        assert!(
            !router.contains(unknown) && !ui.contains(unknown),
            "router() uses {unknown}: teach this test (and the OpenAPI table) about it"
        );
    }
    assert!(
        !ui.contains(".nest("),
        "ui::routes nests a router: teach this test"
    );
    let mut found = BTreeSet::new();
    let mut outer = router.clone();
    let mut rest = router.as_str();
    while let Some(at) = rest.find(".nest(") {
        let open = at + ".nest".len();
        let close = matching(rest, open);
        let args = &rest[open + 1..close];
        let prefix = first_string(args);
        let target = args[args.find(',').expect("nest target") + 1..].trim();
        if target.starts_with("ui::routes(") {
            found.extend(routes(&ui, &prefix));
        } else if target
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            let (start, end) = let_statement(&router, target);
            found.extend(routes(&router[start..end], &prefix));
            outer = outer.replace(&router[start..end], "");
        } else {
            panic!(".nest({args}): teach this test about this kind of router");
        }
        rest = &rest[close..];
    }
    found.extend(routes(&outer, ""));
    found
}

#[test]
fn the_route_reader_reads_routes() {
    let text = r#"
        let api = Router::new()
            .route("/a", get(x::get).post(x::post))
            .route("/a/{id}", axum::routing::patch(x::patch))
            .layer(y);
        Router::new().route("/", get(home)).nest("/api", api)
    "#;
    let (start, end) = let_statement(text, "api");
    let api: Vec<_> = routes(&text[start..end], "/api").into_iter().collect();
    assert_eq!(
        api,
        [
            ("GET".to_owned(), "/api/a".to_owned()),
            ("PATCH".to_owned(), "/api/a/{id}".to_owned()),
            ("POST".to_owned(), "/api/a".to_owned()),
        ]
    );
    assert_eq!(strip_comments("a // b\n\"//c\" // d"), "a \n\"//c\" ");
}

#[test]
fn every_route_is_documented() {
    let in_source = routes_in_source();
    assert!(in_source.len() > 40, "too few routes read: {in_source:?}");
    let mut documented = BTreeSet::new();
    for op in operations() {
        let key = (op.method.to_uppercase(), op.path.to_owned());
        assert!(
            documented.insert(key.clone()),
            "{key:?} is documented twice"
        );
    }
    let undocumented: Vec<_> = in_source.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&in_source).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "routes without an entry in src/http/openapi/operations.rs operations(): {undocumented:?}\n\
         entries without a route in router(): {unknown:?}"
    );
}

/// Every `$ref` of `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(target)) => out.push(target),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_consistent() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("$ref {target} outside components/schemas"));
        assert!(schemas.contains_key(name), "$ref {target} has no schema");
    }
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            let declared: BTreeSet<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, in_path, "{method} {path}");
            assert!(
                !op["responses"].as_object().unwrap().is_empty(),
                "{method} {path}: no responses"
            );
        }
    }
    // The request bodies are the handlers' own types.
    for name in [
        "NewTicket",
        "TicketUpdate",
        "ScoreInput",
        "AnnotationInput",
        "LoginBody",
    ] {
        assert!(schemas.contains_key(name), "{name} missing");
    }
    let new_ticket = &schemas["NewTicket"];
    assert_eq!(new_ticket["additionalProperties"], false);
    assert!(new_ticket["properties"]["promised_callback_at"].is_object());
    // Refined: kind is required and one of the kinds.
    assert!(new_ticket["required"]
        .as_array()
        .unwrap()
        .contains(&json!("kind")));
    assert_eq!(
        new_ticket["properties"]["kind"]["$ref"],
        "#/components/schemas/TicketKind"
    );
    // Linked: a new ticket's id leads to its operations.
    let links = &doc["paths"]["/api/tickets"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["patch_api_tickets_id"]["parameters"]["id"],
        "$response.body#/id"
    );
    assert!(links["post_api_tickets_id_archive"].is_object());
}

#[test]
fn schema_names_do_not_clash() {
    let (mut requests, mut responses) = generators();
    for op in operations() {
        op.to_json(&mut requests, &mut responses);
    }
    let requests = requests.take_definitions(true);
    for (name, schema) in responses.take_definitions(true) {
        if let Some(other) = requests.get(&name) {
            assert_eq!(
                other, &schema,
                "{name}: request and response schemas differ"
            );
        }
    }
}

#[test]
fn public_operations_are_few() {
    let public: BTreeSet<String> = operations()
        .into_iter()
        .filter(|op| op.access == Access::Public)
        .map(|op| format!("{} {}", op.method.to_uppercase(), op.path))
        .collect();
    let expected: BTreeSet<String> = [
        "GET /healthz",
        "GET /metrics",
        "GET /api/openapi.json",
        "GET /login",
        "POST /login",
        "POST /api/login",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(public, expected);
}
