//! `regex`: matches, extracts or replaces a regular expression in a text,
//! with Rust's `regex` crate: matching takes time linear in the text,
//! whatever the pattern.

use flowmesh_model::Primitive;
use flowmesh_model::validate::Outputs;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Ctx, OutputBudget, described, output};
use crate::expr::is_template;
use crate::kind::{Behaviour, NodeKind, Problems};
use crate::{NodeError, Outcome};

/// Largest compiled pattern, in bytes: a short pattern with large counted
/// repetitions (`(\w{100}){100}`) compiles to a large program.
const SIZE_LIMIT: usize = 1 << 20;

/// Most matches `extract` lists.
pub const MAX_MATCHES: usize = 10_000;

pub struct Regex;

#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// Gives the text searched, a string; `{{ … }}` around it is allowed.
    #[schemars(length(min = 1), extend("x-flowmesh-field" = "expression"))]
    pub text: String,
    /// The pattern, in the syntax of Rust's regex crate (no look-around or
    /// back-references; `(?i)` for case-insensitive). Checked when the
    /// workflow is saved, unless it is a template: then only once rendered,
    /// when the node runs.
    #[schemars(length(min = 1, max = 4096), extend("x-flowmesh-field" = "template"))]
    pub pattern: String,
    #[serde(default)]
    pub mode: Mode,
    /// With `replace`, and only then: what each match is replaced by; `$1`
    /// or `${name}` insert a group, `$$` a dollar sign.
    #[serde(default)]
    #[schemars(extend("x-flowmesh-field" = "template"))]
    pub replacement: Option<String>,
}

#[derive(Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Whether the text matches, and the first match: `{matched, match}`.
    #[default]
    Match,
    /// Every match, in order: `{count, matches}`.
    Extract,
    /// The text with every match replaced: `{text, replaced}`.
    Replace,
}

fn compile(pattern: &str) -> Result<::regex::Regex, ::regex::Error> {
    ::regex::RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .build()
}

impl NodeKind for Regex {
    type Config = Config;
    const NAME: &'static str = "regex";
    const PRIMITIVE: Primitive = Primitive::Data;
    const DESCRIPTION: &'static str = "Matches a regular expression in a text (linear time); config: text, pattern, mode (match, extract, replace), replacement. Output: match {matched, match}, extract {count, matches}, replace {text, replaced}; a match is {text, groups, named}.";
    const BEHAVIOUR: Behaviour = Behaviour::COMPUTE;

    fn example() -> Value {
        json!({"text": "trigger.body.subject", "pattern": "#(?<order>\\d+)", "mode": "extract"})
    }

    fn check(config: &Config, problems: &mut Problems<'_>) -> Outputs {
        if !is_template(&config.pattern)
            && let Err(e) = compile(&config.pattern)
        {
            problems.push("pattern", "invalid_regex", e.to_string());
        }
        match (config.mode, &config.replacement) {
            (Mode::Replace, None) => problems.push(
                "replacement",
                "required",
                "mode replace needs a replacement",
            ),
            (Mode::Match | Mode::Extract, Some(_)) => problems.push(
                "replacement",
                "unused",
                "a replacement is used by mode replace only",
            ),
            _ => {}
        }
        Outputs::Single
    }

    async fn run(config: Config, ctx: &Ctx<'_>) -> Result<Outcome, NodeError> {
        let scope = ctx.scope();
        let pattern = ctx.expr.render_text(&config.pattern, &scope)?;
        let regex = compile(&pattern).map_err(|e| {
            NodeError::permanent(format!(
                "config.pattern rendered to {pattern:?}, which is not a valid pattern: {e}"
            ))
        })?;
        let text = match ctx.expr.eval(&config.text, &scope)? {
            Value::String(text) => text,
            other => {
                return Err(NodeError::permanent(format!(
                    "config.text must give a string, but `{}` gave {}",
                    config.text,
                    described(&other)
                )));
            }
        };
        match config.mode {
            Mode::Match => {
                let first = regex.captures(&text).map(|c| found(&regex, &c));
                output(json!({"matched": first.is_some(), "match": first}))
            }
            Mode::Extract => extract(&regex, &text, OutputBudget::new(ctx)),
            Mode::Replace => {
                let replacement = config.replacement.unwrap_or_default();
                let replacement = ctx.expr.render_text(&replacement, &scope)?;
                replace(&regex, &text, &replacement, OutputBudget::new(ctx))
            }
        }
    }
}

/// A match: its text, its numbered groups after the whole match (null
/// where a group took no part) and its named ones.
fn found(regex: &::regex::Regex, captures: &::regex::Captures<'_>) -> Value {
    let text = |i: usize| captures.get(i).map(|m| m.as_str());
    let groups: Vec<Option<&str>> = (1..captures.len()).map(text).collect();
    let named: Map<String, Value> = regex
        .capture_names()
        .enumerate()
        .filter_map(|(i, name)| Some((name?.to_owned(), json!(text(i)))))
        .collect();
    json!({"text": text(0), "groups": groups, "named": named})
}

fn extract(
    regex: &::regex::Regex,
    text: &str,
    mut budget: OutputBudget,
) -> Result<Outcome, NodeError> {
    let mut matches = Vec::new();
    for captures in regex.captures_iter(text) {
        if matches.len() == MAX_MATCHES {
            return Err(NodeError::permanent(format!(
                "the pattern matches more than {MAX_MATCHES} times, the most extract lists; narrow the pattern or split the text first"
            )));
        }
        let one = found(regex, &captures);
        budget.charge_value(&one)?;
        matches.push(one);
    }
    output(json!({"count": matches.len(), "matches": matches}))
}

fn replace(
    regex: &::regex::Regex,
    text: &str,
    replacement: &str,
    mut budget: OutputBudget,
) -> Result<Outcome, NodeError> {
    // Each `$` of the replacement but `$$` may insert up to the whole match.
    let inserts = replacement.matches('$').count() - 2 * replacement.matches("$$").count();
    let mut replaced = String::new();
    let mut last = 0;
    let mut count = 0usize;
    for captures in regex.captures_iter(text) {
        let Some(whole) = captures.get(0) else {
            continue;
        };
        let most = replacement
            .len()
            .saturating_add(inserts.saturating_mul(whole.len()));
        budget.charge(whole.start() - last)?;
        budget.fits(most)?;
        replaced.push_str(&text[last..whole.start()]);
        let before = replaced.len();
        captures.expand(replacement, &mut replaced);
        budget.charge(replaced.len() - before)?;
        last = whole.end();
        count += 1;
    }
    budget.charge(text.len() - last)?;
    replaced.push_str(&text[last..]);
    output(json!({"text": replaced, "replaced": count}))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::MAX_MATCHES;
    use crate::ErrorClass;
    use crate::kinds::testing::{explained, problems, run, run_capped};

    fn mail() -> serde_json::Value {
        json!({"fetch": {"subject": "Re: order #123 and #456", "n": 7}})
    }

    #[tokio::test]
    async fn match_says_whether_and_gives_the_first_match_s_groups() {
        let found = run(
            "regex",
            json!({"text": "fetch.subject", "pattern": "#(?<order>\\d+)( and)?"}),
            &mail(),
        )
        .await;
        assert_eq!(
            found.unwrap(),
            json!({"matched": true, "match": {
                "text": "#123 and", "groups": ["123", " and"], "named": {"order": "123"}
            }})
        );
        let optional = run(
            "regex",
            json!({"text": "'#9'", "pattern": "#(\\d)(x)?"}),
            &mail(),
        )
        .await;
        assert_eq!(
            optional.unwrap()["match"],
            json!({"text": "#9", "groups": ["9", null], "named": {}})
        );
        let none = run(
            "regex",
            json!({"text": "fetch.subject", "pattern": "(?i)INVOICE", "mode": "match"}),
            &mail(),
        )
        .await;
        assert_eq!(none.unwrap(), json!({"matched": false, "match": null}));
    }

    #[tokio::test]
    async fn extract_lists_every_match_up_to_a_bound() {
        let all = run(
            "regex",
            json!({"text": "fetch.subject", "pattern": "#(?<order>\\d+)", "mode": "extract"}),
            &mail(),
        )
        .await;
        assert_eq!(
            all.unwrap(),
            json!({"count": 2, "matches": [
                {"text": "#123", "groups": ["123"], "named": {"order": "123"}},
                {"text": "#456", "groups": ["456"], "named": {"order": "456"}}
            ]})
        );
        let many = json!({"fetch": {"text": "a".repeat(MAX_MATCHES + 1)}});
        let error = run(
            "regex",
            json!({"text": "fetch.text", "pattern": "a", "mode": "extract"}),
            &many,
        )
        .await
        .unwrap_err();
        assert!(error.message.contains("more than 10000 times"), "{error}");
        let error = run_capped(
            "regex",
            json!({"text": "fetch.text", "pattern": "a+", "mode": "extract"}),
            &many,
            1000,
        )
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::OutputTooLarge, "{error}");
    }

    #[tokio::test]
    async fn replace_expands_groups_within_the_output_cap() {
        let replaced = run(
            "regex",
            json!({"text": "fetch.subject", "pattern": "#(?<n>\\d+)", "mode": "replace",
                   "replacement": "{{ 'order' }} ${n}$$"}),
            &mail(),
        )
        .await;
        assert_eq!(
            replaced.unwrap(),
            json!({"text": "Re: order order 123$ and order 456$", "replaced": 2})
        );
        let untouched = run(
            "regex",
            json!({"text": "fetch.subject", "pattern": "x", "mode": "replace", "replacement": ""}),
            &mail(),
        )
        .await;
        assert_eq!(
            untouched.unwrap(),
            json!({"text": "Re: order #123 and #456", "replaced": 0})
        );
        // Each match would grow a hundredfold.
        let error = run_capped(
            "regex",
            json!({"text": "fetch.text", "pattern": ".+", "mode": "replace",
                   "replacement": "$0".repeat(100)}),
            &json!({"fetch": {"text": "a".repeat(500)}}),
            10_000,
        )
        .await
        .unwrap_err();
        assert_eq!(error.class, ErrorClass::OutputTooLarge, "{error}");
    }

    #[tokio::test]
    async fn a_text_that_is_no_string_or_a_rendered_bad_pattern_fails() {
        let error = run("regex", json!({"text": "fetch.n", "pattern": "7"}), &mail())
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "config.text must give a string, but `fetch.n` gave a number"
        );
        let error = run(
            "regex",
            json!({"text": "fetch.subject", "pattern": "{{ '(' }}"}),
            &mail(),
        )
        .await
        .unwrap_err();
        assert!(
            error.message.starts_with(
                "config.pattern rendered to \"(\", which is not a valid pattern: regex parse error"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_bad_or_oversized_pattern_is_refused_when_saved() {
        let found = explained("regex", json!({"text": "fetch.subject", "pattern": "(a"}));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "nodes[1].config.pattern");
        assert_eq!(found[0].1, "invalid_regex");
        assert!(found[0].2.contains("unclosed group"), "{}", found[0].2);
        let found = explained(
            "regex",
            json!({"text": "fetch.subject", "pattern": "(\\w{100}){100}"}),
        );
        assert!(found[0].2.contains("size limit"), "{found:?}");
        // A template is checked once rendered.
        assert_eq!(
            problems(
                "regex",
                json!({"text": "fetch.subject", "pattern": "{{ fetch.pattern }}("})
            ),
            []
        );
    }

    #[test]
    fn a_replacement_goes_with_mode_replace_only() {
        assert_eq!(
            problems(
                "regex",
                json!({"text": "fetch.subject", "pattern": "a", "mode": "replace"})
            ),
            [(
                "nodes[1].config.replacement".to_owned(),
                "required".to_owned()
            )]
        );
        assert_eq!(
            problems(
                "regex",
                json!({"text": "fetch.subject", "pattern": "a", "replacement": "b"})
            ),
            [(
                "nodes[1].config.replacement".to_owned(),
                "unused".to_owned()
            )]
        );
        assert_eq!(
            problems(
                "regex",
                json!({"text": "fetch.subject", "pattern": "a", "mode": "split"})
            ),
            [(
                "nodes[1].config.mode".to_owned(),
                "invalid_value".to_owned()
            )]
        );
    }
}
