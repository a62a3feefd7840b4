use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use flowmesh_model::names::Upstream;
use serde_json::json;

use super::*;

/// The output limit of these tests: 1 MiB.
const CAP: usize = 1024 * 1024;

fn scope(v: Value) -> Scope {
    Scope::new(v.as_object().unwrap(), CAP)
}

fn empty() -> Scope {
    scope(json!({}))
}

/// Tests that measure the peak memory of the process, or allocate
/// megabytes, run one at a time so that they do not see each other's.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn python_string_methods_work() {
    let e = Expressions::new(10_000);
    let c = scope(json!({"user": {"email": "ada@example.com"}}));
    assert!(e.truthy("user.email.endswith('@example.com')", &c).unwrap());
    assert!(!e.truthy("user.email.startswith('bob')", &c).unwrap());
    let joined = e.eval("'-'.join(['a', 'b']) ~ 'xy'.replace('y', 'z')", &c);
    assert_eq!(joined.unwrap(), json!("a-bxz"));
}

#[test]
fn lone_expressions_keep_their_type_and_templates_render_text() {
    let e = Expressions::new(10_000);
    let c = scope(json!({"trigger": {"body": {"n": 21, "name": "ada", "tags": ["a"]}}}));
    let out = e
        .render_value(
            &json!({"double": "{{ trigger.body.n * 2 }}", "name": "{{ trigger.body.name | upper }}!",
                    "tags": "{{ trigger.body.tags }}", "plain": 5}),
            &c,
        )
        .unwrap();
    assert_eq!(
        out,
        json!({"double": 42, "name": "ADA!", "tags": ["a"], "plain": 5})
    );
}

#[test]
fn runaway_templates_run_out_of_fuel() {
    let e = Expressions::new(10_000);
    let err = e
        .render_text("{% for i in range(100000000) %}x{% endfor %}", &empty())
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Permanent);
}

/// The names a node reads when `name` is upstream of it.
fn upstream_of_n(name: &str) -> Upstream<'_> {
    Upstream::new(["start", name, "n"], [("start", name), (name, "n")])
}

#[test]
fn syntax_errors_are_found_before_running() {
    let e = Expressions::new(10_000);
    let graph = upstream_of_n("name");
    let names = graph.names(2);
    assert!(e.check_template("{{ unclosed", &names).is_err());
    assert!(e.check_template("{% if %}", &names).is_err());
    assert!(e.check_expression("a ==", &names).is_err());
    assert_eq!(e.check_template("hello {{ name }}", &names), Ok(vec![]));
}

#[test]
fn values_up_to_the_limit_are_built() {
    let _serial = one_at_a_time();
    let e = Expressions::new(50_000);
    let c = scope(json!({"items": (0..1000).collect::<Vec<_>>()}));
    let out = e
        .render_value(
            &json!({
                "text": "{{ 'a' * 1000000 }}",
                "joined": "{{ items | join(',') | length }}",
                "sorted": "{{ (items | sort(reverse=true))[0] }}",
                "padded": "{{ '%10s' | format('x') }}",
                "plus": "{{ ('a' * 400000 + 'b' * 400000) | length }}",
                "concat": "{{ ('a' * 400000 ~ 'b' * 400000) | length }}",
                "list": "{{ (range(10000) | list + [1]) | length }}",
                "doubled": "{% set ns = namespace(s='ab') %}{% for i in range(15) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            }),
            &c,
        )
        .unwrap();
    assert_eq!(out["text"].as_str().unwrap().len(), 1_000_000);
    assert_eq!(out["joined"], json!(3889));
    assert_eq!(out["sorted"], json!(999));
    assert_eq!(out["padded"], json!("         x"));
    assert_eq!(out["plus"], json!(800_000));
    assert_eq!(out["concat"], json!(800_000));
    assert_eq!(out["list"], json!(10_001));
    assert_eq!(out["doubled"], json!("65536"));
}

/// Peak resident memory of this process, in bytes.
fn peak_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: usize = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Renders `template` (a template, or one lone expression) and expects the
/// size limit to refuse it at once, without the process growing.
fn refused(template: &str) -> NodeError {
    let _serial = one_at_a_time();
    let e = Expressions::new(50_000);
    let before = peak_rss();
    let started = Instant::now();
    let result = e.render_value(&json!(template), &empty());
    let took = started.elapsed();
    let grew = peak_rss().saturating_sub(before);
    let err = match result {
        Ok(value) => panic!(
            "{template} was not refused: it built {} bytes of JSON",
            serde_json::to_vec(&value).map_or(0, |v| v.len())
        ),
        Err(err) => err,
    };
    assert_eq!(err.class, ErrorClass::OutputTooLarge, "{template}: {err}");
    assert!(
        took < Duration::from_secs(5),
        "{template} took {took:?} to fail"
    );
    assert!(
        grew < 48 * 1024 * 1024,
        "{template} grew the process by {grew} bytes"
    );
    err
}

fn refused_over_the_value_limit(template: &str) {
    let err = refused(template);
    assert!(
        err.message
            .starts_with("the template built a value of more than 1048576 bytes;"),
        "{template}: {}",
        err.message
    );
    assert!(err.message.contains("max_output_bytes"), "{}", err.message);
}

#[test]
fn the_repeated_string_of_the_finding_is_refused() {
    refused_over_the_value_limit(
        "{% set s = 'a' * 100000000 %}{% for i in range(80) %}{{ s }}{% endfor %}",
    );
}

#[test]
fn string_repetition_is_refused() {
    refused_over_the_value_limit("{{ 'a' * 100000000 }}");
}

#[test]
fn output_is_bounded_while_it_is_written() {
    refused_over_the_value_limit(
        "{% set s = 'a' * 1000000 %}{% for i in range(200) %}{{ s }}{% endfor %}",
    );
}

#[test]
fn captured_blocks_are_bounded() {
    refused_over_the_value_limit(
        "{% set s = 'a' * 1000000 %}{% set c %}{% for i in range(200) %}{{ s }}{% endfor %}{% endset %}{{ c | length }}",
    );
}

#[test]
fn doubling_by_concatenation_is_refused() {
    refused_over_the_value_limit(
        "{% set ns = namespace(s='ab') %}{% for i in range(26) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    );
    refused_over_the_value_limit(
        "{% set ns = namespace(s='ab') %}{% for i in range(26) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
    );
}

#[test]
fn list_repetition_is_refused() {
    refused_over_the_value_limit("{{ ([1] * 10000000) | list | length }}");
}

#[test]
fn doubling_a_list_by_concatenation_is_refused() {
    refused_over_the_value_limit(
        "{% set ns = namespace(l=[0]) %}{% for i in range(23) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | list | length }}",
    );
}

#[test]
fn join_of_a_big_range_is_refused() {
    refused_over_the_value_limit("{{ range(100000) | join('x' * 1000) | length }}");
    refused_over_the_value_limit("{{ ('x' * 1000).join(range(100000)) | length }}");
}

#[test]
fn replace_that_multiplies_is_refused() {
    refused_over_the_value_limit("{{ ('a' * 1000) | replace('a', 'b' * 100000) | length }}");
    refused_over_the_value_limit("{{ ('a' * 1000).replace('a', 'b' * 100000) | length }}");
    refused_over_the_value_limit("{{ ('a' * 1000).replace('', 'b' * 100000) | length }}");
}

#[test]
fn format_widths_are_refused() {
    refused_over_the_value_limit("{{ '%200000000s' | format('a') | length }}");
    refused_over_the_value_limit("{{ '{:>200000000}'.format('a') | length }}");
    refused_over_the_value_limit("{{ '%.200000000f' | format(1.5) | length }}");
}

#[test]
fn indent_width_is_refused() {
    refused_over_the_value_limit("{{ ('a\n' * 1000) | indent(100000) | length }}");
}

#[test]
fn padding_methods_cannot_allocate() {
    // minijinja-contrib 3.0.5 has no `ljust` or `center`: the call fails
    // before anything is allocated.
    let _serial = one_at_a_time();
    let e = Expressions::new(50_000);
    let before = peak_rss();
    let err = e.eval("'a'.ljust(10**9)", &empty()).unwrap_err();
    assert!(err.message.contains("unknown method"), "{}", err.message);
    assert!(peak_rss().saturating_sub(before) < 48 * 1024 * 1024);
}

#[test]
fn lazy_lists_of_long_strings_are_refused_when_expanded() {
    refused_over_the_value_limit("{{ ['x' * 500000] * 400 }}");
    refused_over_the_value_limit("{{ (['x' * 100000] * 2000) | string | length }}");
    refused_over_the_value_limit("{{ (['x' * 100000] * 2000) | pprint | length }}");
    refused_over_the_value_limit("{{ (['x' * 100000] * 2000) | tojson | length }}");
    refused_over_the_value_limit("{{ [[[[1, 2]]]] | tojson(indent=100000000) | length }}");
    refused_over_the_value_limit("{{ ('' ~ (['x' * 100000] * 2000)) | length }}");
}

#[test]
fn fill_values_are_refused() {
    refused_over_the_value_limit("{{ [1] | batch(10000000, 0) | list | length }}");
    refused_over_the_value_limit("{{ [] | slice(3000000) | length }}");
}

#[test]
fn many_medium_values_add_up_to_the_total_limit() {
    let err = refused("{% for i in range(100) %}{% set t = 'x' * (500000 + i) %}{% endfor %}done");
    assert!(
        err.message
            .starts_with("the template built more than 8388608 bytes of values in all;"),
        "{}",
        err.message
    );
}

#[test]
fn every_string_of_a_mapping_shares_one_budget() {
    let _serial = one_at_a_time();
    let e = Expressions::new(50_000);
    let field = "{% for i in range(4) %}{{ 'x' * 250000 }}{% endfor %}";
    let one = e.render_value(&json!({"a": field}), &empty());
    assert_eq!(one.unwrap()["a"].as_str().unwrap().len(), 1_000_000);
    let many: Map<String, Value> = (0..10).map(|i| (format!("f{i}"), json!(field))).collect();
    let err = e.render_value(&Value::Object(many), &empty()).unwrap_err();
    assert_eq!(err.class, ErrorClass::OutputTooLarge, "{err}");
}

#[test]
fn an_expression_wrapped_in_braces_is_the_same_expression() {
    let e = Expressions::new(10_000);
    let c = scope(json!({"get": {"body": {"items": [1, 2]}}}));
    let graph = upstream_of_n("get");
    let names = graph.names(2);
    assert_eq!(
        e.check_expression("{{ get.body.items }}", &names),
        Ok(vec![])
    );
    assert_eq!(e.eval("{{ get.body.items }}", &c).unwrap(), json!([1, 2]));
    assert_eq!(e.eval("get.body.items", &c).unwrap(), json!([1, 2]));
    assert!(e.truthy("{{- get.body.items | length > 1 -}}", &c).unwrap());
    assert!(
        e.check_expression("{{ get.body.items }} + {{ x }}", &names)
            .is_err()
    );
}

/// The (code, message) of each problem of a template.
fn problems(template: &str) -> Vec<(&'static str, String)> {
    let e = Expressions::new(10_000);
    let graph = Upstream::new(
        ["start", "get", "n", "other"],
        [("start", "get"), ("get", "n")],
    );
    let mut names = graph.names(2);
    names.bind("item");
    e.check_template(template, &names)
        .unwrap_or_else(|err| panic!("{template}: {err}"))
        .into_iter()
        .map(|p| (p.code, p.message))
        .collect()
}

#[test]
fn names_that_are_not_bound_where_the_node_runs_are_refused() {
    assert_eq!(
        problems("{{ usr.email }}"),
        [(
            "unknown_name",
            "unknown name `usr`; known here: trigger, item, start, get".to_owned()
        )]
    );
    assert_eq!(
        problems("{{ other.body }}"),
        [(
            "not_upstream",
            "`other` is not upstream of this node: it has no output yet when this node runs"
                .to_owned()
        )]
    );
    assert_eq!(
        problems("{{ n.body }}"),
        [(
            "not_upstream",
            "`n` is this node: it has no output while it runs".to_owned()
        )]
    );
}

#[test]
fn unknown_filters_tests_and_functions_are_refused_with_the_known_ones() {
    let found = problems("{{ get.body | uppr }}");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, "unknown_filter");
    assert!(
        found[0]
            .1
            .starts_with("unknown filter `uppr`; known filters: abs, "),
        "{}",
        found[0].1
    );
    assert!(found[0].1.contains(", upper, "), "{}", found[0].1);
    let found = problems("{% if get.body is evn %}x{% endif %}");
    assert_eq!(found[0].0, "unknown_test");
    assert!(found[0].1.contains("known tests: "), "{}", found[0].1);
    assert!(found[0].1.contains(", even, "), "{}", found[0].1);
    assert_eq!(
        problems("{{ frobnicate(get) }}"),
        [(
            "unknown_function",
            "unknown function `frobnicate`; known functions: debug, dict, namespace, range"
                .to_owned()
        )]
    );
}

#[test]
fn every_problem_of_a_text_is_found_at_once() {
    let codes: Vec<&str> = problems("{{ usr.email | uppr }} {{ other }} {{ nope() }}")
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    assert_eq!(
        codes,
        [
            "unknown_filter",
            "unknown_function",
            "not_upstream",
            "unknown_name"
        ]
    );
}

#[test]
fn names_a_text_binds_itself_and_the_environment_s_are_allowed() {
    for template in [
        "{% for x in get.body.items %}{{ x.id }} {{ loop.index }}{% endfor %}",
        "{% set total = get.body.n + 1 %}{{ total }}",
        "{% macro greet(who) %}hi {{ who }}{% endmacro %}{{ greet(trigger.body.name) }}",
        "{% set ns = namespace(n=0) %}{{ range(3) | list }} {{ dict(a=1) }} {{ ns.n }}",
        "{{ item.total > 1 and start is defined }}",
        "{{ trigger.body.x | default('none') | upper }}",
        "{{ get.body.name.endswith('a') }}",
    ] {
        assert_eq!(problems(template), [], "{template}");
    }
}
