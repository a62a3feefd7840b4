use serde_json::{Value, json};

use super::super::{Expressions, Scope};
use super::*;

fn scope() -> Scope {
    let scope = json!({
        "trigger": {"body": {"email": "ada@example.com", "name": "Ada", "items": [1, 2],
                             "nothing": null, "a b": {"c": 1}}},
        "skipped": null,
    });
    Scope::new(scope.as_object().unwrap(), 1024 * 1024)
}

/// The message of a template's failure.
fn failure(template: &str) -> String {
    let e = Expressions::new(10_000);
    match e.render_value(&json!(template), &scope()) {
        Ok(value) => panic!("{template} gave {value}"),
        Err(err) => err.message,
    }
}

fn rendered(template: &str) -> Value {
    let e = Expressions::new(10_000);
    e.render_value(&json!(template), &scope())
        .unwrap_or_else(|err| panic!("{template}: {err}"))
}

const FIELDS: &str = "it has: a b, email, items, name, nothing";

#[test]
fn a_missing_field_is_named_with_the_fields_there() {
    for template in [
        "Hello {{ trigger.body.emial }}!",
        "{{ trigger.body.emial }}",
        "{{ trigger.body['emial'] }}",
        "{{ trigger.body.emial ~ '!' }}",
        "{{ trigger.body.emial + 1 }}",
        "{{ trigger.body.emial.endswith('x') }}",
        "{{ trigger.body.emial | upper }}",
        "{{ trigger.body.emial.domain }}",
        "{% for x in trigger.body.emial %}{{ x }}{% endfor %}",
        "{{ [trigger.body.emial] }}",
        "{{ {'to': trigger.body.name | default('you'), 'at': trigger.body.emial} }}",
    ] {
        assert_eq!(
            failure(template),
            format!("trigger.body has no field \"emial\"; {FIELDS}"),
            "{template}"
        );
    }
}

#[test]
fn each_kind_of_missing_step_says_what_is_there() {
    assert_eq!(
        failure("{{ usr.email }}"),
        "unknown name `usr`; known here: skipped, trigger"
    );
    assert_eq!(
        failure("{{ trigger.body.items[5] }}"),
        "trigger.body.items has no item 5; it is an array of 2 items"
    );
    assert_eq!(
        failure("{{ trigger.body.email.user }}"),
        "trigger.body.email is a string, so it has no field \"user\""
    );
    assert_eq!(
        failure("{{ trigger.body.nothing.x }}"),
        "trigger.body.nothing is null, so it has no field \"x\""
    );
    assert_eq!(
        failure("{{ skipped.body.id }}"),
        "skipped is null (as a skipped node's output is), so it has no field \"body\""
    );
    assert_eq!(
        failure("{{ trigger.body['a b'].d }}"),
        "trigger.body[\"a b\"] has no field \"d\"; it has: c"
    );
}

#[test]
fn long_listings_are_cut() {
    let long = "x".repeat(100);
    let mut body: serde_json::Map<String, Value> =
        (0..15).map(|i| (format!("f{i:02}"), json!(i))).collect();
    body.insert(long.clone(), json!(0));
    let scope = Scope::new(
        json!({"trigger": {"body": body}}).as_object().unwrap(),
        1 << 20,
    );
    let e = Expressions::new(10_000);
    let err = e.eval("trigger.body.nope", &scope).unwrap_err();
    assert_eq!(
        err.message,
        "trigger.body has no field \"nope\"; it has: f00, f01, f02, f03, f04, f05, f06, f07, f08, f09, … (6 more)"
    );
    let err = e
        .eval(&format!("trigger.body.{long}.y"), &scope)
        .unwrap_err();
    assert_eq!(
        err.message,
        format!(
            "trigger.body.{}… is a number, so it has no field \"y\"",
            "x".repeat(40)
        )
    );
}

#[test]
fn optional_fields_are_tested_or_defaulted() {
    assert_eq!(
        rendered("{{ trigger.body.emial | default('none') }}"),
        json!("none")
    );
    assert_eq!(
        rendered("{{ trigger.body.emial is defined }}"),
        json!(false)
    );
    assert_eq!(
        rendered("{% if trigger.body.emial %}yes{% else %}no{% endif %}"),
        json!("no")
    );
    assert_eq!(
        rendered("{{ trigger.body.emial or 'none' }}"),
        json!("none")
    );
    assert_eq!(
        rendered("{{ skipped.body | default('skipped') }}"),
        json!("skipped")
    );
    assert_eq!(rendered("{{ skipped }}"), Value::Null);
    assert_eq!(rendered("{{ trigger.body.name if false }}"), Value::Null);
    let e = Expressions::new(10_000);
    assert!(!e.truthy("trigger.body.emial", &scope()).unwrap());
    let err = e.truthy("trigger.body.emial.x", &scope()).unwrap_err();
    assert_eq!(
        err.message,
        format!("trigger.body has no field \"emial\"; {FIELDS}")
    );
}

#[test]
fn a_name_the_template_binds_keeps_minijinja_s_words() {
    let message = failure("{% for i in trigger.body.items %}{{ i.x }}{% endfor %}");
    assert!(message.contains("`i.x` is undefined"), "{message}");
}

#[test]
fn the_lookup_is_read_from_minijinja_s_detail() {
    assert_eq!(origin("undefined value: `a.b` is undefined"), Some("a.b"));
    assert_eq!(
        origin("tried to use + operator (`a[\"x y\"]` is undefined, from line 2)"),
        Some("a[\"x y\"]")
    );
    assert_eq!(origin("something else"), None);
    let parsed = |text: &str| parse_expr(text).ok().and_then(|e| chain(&e));
    assert_eq!(
        parsed("a.b[\"c d\"][-1]"),
        Some(Chain {
            root: "a".into(),
            steps: vec![
                Step::Field("b".into()),
                Step::Field("c d".into()),
                Step::Index(-1)
            ]
        })
    );
    assert_eq!(parsed("(...).b"), None);
    assert_eq!(parsed("a[b]"), None);
}
