//! The audit view's "what changed": the state recorded before and after an event, read as one
//! line per field that differs ("Critical high: 6.2 → 7.5"), so an auditor reads the change
//! instead of comparing two JSON texts by eye. The recorded JSON stays one click away.
//!
//! Nested objects are walked with their path ("limits · critical high"); a list of plain
//! values is one field ("A, B, C"); a list of objects is walked item by item ("tests 2 ·
//! code"). A field only after the event was added, one only before was removed. Fields that
//! did not change are left out, except when there is no "before" at all (a creation), where
//! every recorded field is what the event set.

use serde_json::Value;

/// One field of an event's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffLine {
    /// The field, in words ("critical high", "limits · low").
    pub field: String,
    /// Its value before the event; `None` when it had none.
    pub old: Option<String>,
    /// Its value after the event; `None` when it has none.
    pub new: Option<String>,
}

/// The lines for an event's recorded before and after (JSON text as stored). Text that is not
/// JSON (an event written before the states were structured) is shown as one line, as written.
pub fn diff(before: Option<&str>, after: Option<&str>) -> Vec<DiffLine> {
    let parse = |text: Option<&str>| -> Result<Option<Value>, String> {
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str::<Value>(t).map(Some).map_err(|_| t.to_owned()),
        }
    };
    let (old, new) = match (parse(before), parse(after)) {
        (Ok(old), Ok(new)) => {
            let old = old.map(|o| match &new {
                Some(n) => rerooted(o, n),
                None => o,
            });
            let fields = |v: Option<Value>| {
                let mut out = Vec::new();
                if let Some(v) = v {
                    flatten("", &v, &mut out);
                }
                out
            };
            (fields(old), fields(new))
        }
        (old, new) => {
            let text = |r: Result<Option<Value>, String>, raw: Option<&str>| match r {
                Err(t) => Some(t),
                Ok(_) => raw.map(str::to_owned),
            };
            return vec![DiffLine {
                field: "as recorded".into(),
                old: text(old, before),
                new: text(new, after),
            }];
        }
    };
    let creation = before.is_none();
    let mut lines = Vec::new();
    for (field, old_value) in &old {
        match new.iter().find(|(f, _)| f == field) {
            Some((_, new_value)) if new_value == old_value => {}
            Some((_, new_value)) => lines.push(DiffLine {
                field: field.clone(),
                old: Some(old_value.clone()),
                new: Some(new_value.clone()),
            }),
            // Gone after the event (or only a "before" recorded: something removed).
            None => lines.push(DiffLine {
                field: field.clone(),
                old: Some(old_value.clone()),
                new: None,
            }),
        }
    }
    for (field, new_value) in &new {
        if !old.iter().any(|(f, _)| f == field) {
            lines.push(DiffLine { field: field.clone(), old: None, new: Some(new_value.clone()) });
        }
    }
    if lines.is_empty() && !creation && !old.is_empty() {
        // Recorded twice the same: say so rather than show an empty cell.
        lines.push(DiffLine { field: "no field changed".into(), old: None, new: None });
    }
    lines
}

/// Some events record the thing itself before and a wrapper after (`{"reason": …,
/// "definition": {…}}`): the before is then compared with the wrapped object, so the lines
/// name the fields that changed rather than every field as removed and added again.
fn rerooted(before: Value, after: &Value) -> Value {
    let (Value::Object(old), Value::Object(new)) = (&before, after) else { return before };
    let wrapper = new.iter().find(|(key, value)| {
        !old.contains_key(*key)
            && value
                .as_object()
                .is_some_and(|inner| !old.is_empty() && old.keys().all(|k| inner.contains_key(k)))
    });
    match wrapper {
        Some((key, _)) => {
            let mut map = serde_json::Map::new();
            map.insert(key.clone(), before);
            Value::Object(map)
        }
        None => before,
    }
}

/// A JSON key as the lab reads it: `critical_high` → "critical high".
fn words(key: &str) -> String {
    key.replace('_', " ")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path} · {key}") }
}

fn flatten(path: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if map.is_empty() && !path.is_empty() {
                out.push((path.to_owned(), "(none)".into()));
            }
            for (k, v) in map {
                flatten(&join(path, &words(k)), v, out);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (i, item) in items.iter().enumerate() {
                flatten(&join(path, &(i + 1).to_string()), item, out);
            }
        }
        Value::Array(items) => {
            let text = items.iter().map(scalar).collect::<Vec<_>>().join(", ");
            out.push((field_name(path), if text.is_empty() { "(none)".into() } else { text }));
        }
        v => out.push((field_name(path), scalar(v))),
    }
}

fn field_name(path: &str) -> String {
    if path.is_empty() { "value".into() } else { path.to_owned() }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(field: &str, old: Option<&str>, new: Option<&str>) -> DiffLine {
        DiffLine { field: field.into(), old: old.map(Into::into), new: new.map(Into::into) }
    }

    #[test]
    fn an_edit_lists_each_changed_field_with_its_old_and_new_value_and_leaves_the_rest_out() {
        let before = r#"{"critical_high":"6.2","unit":"mmol/L","limits":{"low":3.5,"high":5.1}}"#;
        let after = r#"{"critical_high":"7.5","unit":"mmol/L","limits":{"low":3.4,"high":5.1}}"#;
        assert_eq!(
            diff(Some(before), Some(after)),
            vec![
                line("critical high", Some("6.2"), Some("7.5")),
                line("limits · low", Some("3.5"), Some("3.4")),
            ]
        );
    }

    #[test]
    fn a_creation_lists_every_field_it_set() {
        let after = r#"{"mrn":"A1","sex":"F","tests":["NA","K"]}"#;
        assert_eq!(
            diff(None, Some(after)),
            vec![
                line("mrn", None, Some("A1")),
                line("sex", None, Some("F")),
                line("tests", None, Some("NA, K")),
            ]
        );
    }

    #[test]
    fn a_field_gone_or_new_after_the_event_says_which() {
        let before = r#"{"reason":"haemolysed","note":null}"#;
        let after = r#"{"note":"recollect","by":"tech"}"#;
        assert_eq!(
            diff(Some(before), Some(after)),
            vec![
                line("note", Some("(none)"), Some("recollect")),
                line("reason", Some("haemolysed"), None),
                line("by", None, Some("tech")),
            ]
        );
    }

    #[test]
    fn lists_of_records_are_walked_item_by_item() {
        let before = r#"{"tests":[{"code":"NA"},{"code":"K"}]}"#;
        let after = r#"{"tests":[{"code":"NA"},{"code":"CL"}]}"#;
        assert_eq!(
            diff(Some(before), Some(after)),
            vec![line("tests · 2 · code", Some("K"), Some("CL"))]
        );
    }

    #[test]
    fn a_thing_recorded_bare_before_and_wrapped_with_its_reason_after_compares_field_by_field() {
        let before = r#"{"code":"K","critical_high":"6.2"}"#;
        let after = r#"{"reason":"policy","definition":{"code":"K","critical_high":"7.5"}}"#;
        assert_eq!(
            diff(Some(before), Some(after)),
            vec![
                line("definition · critical high", Some("6.2"), Some("7.5")),
                line("reason", None, Some("policy")),
            ]
        );
    }

    #[test]
    fn text_that_is_not_json_is_shown_as_recorded() {
        assert_eq!(
            diff(Some("plain words"), Some(r#"{"a":1}"#)),
            vec![line("as recorded", Some("plain words"), Some(r#"{"a":1}"#))]
        );
    }
}
