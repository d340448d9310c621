//! Atlassian Document Format (the JSON tree of descriptions and comment bodies in REST
//! v3) to plain text an analyst can search and read: paragraphs and headings on their
//! own lines, list items as `- ` or `1. `, table cells joined by ` | `, mentions, emoji,
//! dates and cards as their text, code as is. Unknown nodes give their children's text,
//! so a node type Atlassian adds later loses only its decoration.

use serde_json::Value;

/// The text of an ADF document (a plain string, as older payloads send, is kept).
pub fn to_text(doc: &Value) -> Option<String> {
    match doc {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        node => {
            let mut out = String::new();
            block(node, &mut out, "");
            let text = out.trim_end().to_string();
            Some(text)
        }
    }
}

fn children(node: &Value) -> &[Value] {
    node.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn attr<'a>(node: &'a Value, key: &str) -> Option<&'a str> {
    node.get("attrs").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// Append a block node, each of its lines starting with `indent`.
fn block(node: &Value, out: &mut String, indent: &str) {
    match node.get("type").and_then(Value::as_str).unwrap_or_default() {
        "doc" | "blockquote" | "panel" | "expand" | "nestedExpand" | "layoutSection" | "layoutColumn"
        | "bodiedExtension" => {
            for child in children(node) {
                block(child, out, indent);
            }
        }
        "bulletList" | "orderedList" | "taskList" | "decisionList" => {
            let ordered = node.get("type").and_then(Value::as_str) == Some("orderedList");
            let start = node.get("attrs").and_then(|a| a.get("order")).and_then(Value::as_u64).unwrap_or(1);
            for (i, item) in children(node).iter().enumerate() {
                let marker = if ordered { format!("{}. ", start + i as u64) } else { "- ".into() };
                let mut inner = String::new();
                for child in children(item) {
                    if is_inline(child) {
                        inline(child, &mut inner);
                    } else {
                        block(child, &mut inner, "");
                    }
                }
                let nested = format!("{indent}  ");
                for (n, line) in inner.trim_end().lines().enumerate() {
                    let lead = if n == 0 { format!("{indent}{marker}") } else { nested.clone() };
                    out.push_str(&format!("{lead}{line}\n"));
                }
            }
        }
        "table" => {
            for row in children(node) {
                let cells: Vec<String> = children(row)
                    .iter()
                    .map(|cell| {
                        let mut text = String::new();
                        for child in children(cell) {
                            block(child, &mut text, "");
                        }
                        text.trim().replace('\n', " ")
                    })
                    .collect();
                out.push_str(&format!("{indent}{}\n", cells.join(" | ")));
            }
        }
        "rule" => out.push_str(&format!("{indent}---\n")),
        "codeBlock" => {
            let mut code = String::new();
            for child in children(node) {
                inline(child, &mut code);
            }
            for line in code.lines() {
                out.push_str(&format!("{indent}{line}\n"));
            }
        }
        "mediaSingle" | "mediaGroup" => {
            for media in children(node) {
                let name = attr(media, "alt").or_else(|| attr(media, "id")).unwrap_or("attachment");
                out.push_str(&format!("{indent}[{name}]\n"));
            }
        }
        // paragraph, heading and anything else: its inline content on one line.
        _ => {
            let mut line = String::new();
            if is_inline(node) {
                inline(node, &mut line);
            } else {
                for child in children(node) {
                    if is_inline(child) {
                        inline(child, &mut line);
                    } else {
                        block(child, &mut line, "");
                    }
                }
            }
            for l in line.split('\n') {
                out.push_str(&format!("{indent}{l}\n"));
            }
        }
    }
}

fn is_inline(node: &Value) -> bool {
    matches!(
        node.get("type").and_then(Value::as_str),
        Some("text" | "hardBreak" | "mention" | "emoji" | "inlineCard" | "date" | "status" | "placeholder")
    )
}

fn inline(node: &Value, out: &mut String) {
    match node.get("type").and_then(Value::as_str).unwrap_or_default() {
        "text" => out.push_str(node.get("text").and_then(Value::as_str).unwrap_or_default()),
        "hardBreak" => out.push('\n'),
        "mention" => out.push_str(attr(node, "text").unwrap_or("@someone")),
        "emoji" => out.push_str(attr(node, "text").or_else(|| attr(node, "shortName")).unwrap_or_default()),
        "inlineCard" => out.push_str(attr(node, "url").unwrap_or_default()),
        "status" | "placeholder" => out.push_str(attr(node, "text").unwrap_or_default()),
        "date" => {
            let millis = attr(node, "timestamp").and_then(|t| t.parse::<i64>().ok());
            if let Some(day) = millis.and_then(chrono::DateTime::from_timestamp_millis) {
                out.push_str(&day.format("%Y-%m-%d").to_string());
            }
        }
        _ => {
            for child in children(node) {
                inline(child, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_text;
    use serde_json::json;

    fn text(t: &str) -> serde_json::Value {
        json!({"type": "text", "text": t})
    }

    fn para(content: Vec<serde_json::Value>) -> serde_json::Value {
        json!({"type": "paragraph", "content": content})
    }

    #[test]
    fn documents_read_as_plain_text() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [text("Login fails")]},
            para(vec![text("Since "), json!({"type": "date", "attrs": {"timestamp": "1717200000000"}}),
                      text(", ask "), json!({"type": "mention", "attrs": {"id": "x", "text": "@Ana"}}),
                      json!({"type": "hardBreak"}), text("see "),
                      json!({"type": "inlineCard", "attrs": {"url": "https://status.example"}}),
                      json!({"type": "emoji", "attrs": {"shortName": ":fire:", "text": "🔥"}})]),
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [para(vec![text("first")]),
                    {"type": "orderedList", "attrs": {"order": 3}, "content": [
                        {"type": "listItem", "content": [para(vec![text("nested")])]}]}]},
                {"type": "listItem", "content": [para(vec![text("second")])]}]},
            {"type": "codeBlock", "attrs": {"language": "sql"}, "content": [text("SELECT 1;\nSELECT 2;")]},
            {"type": "rule"},
            {"type": "table", "content": [
                {"type": "tableRow", "content": [
                    {"type": "tableHeader", "content": [para(vec![text("env")])]},
                    {"type": "tableHeader", "content": [para(vec![text("state")])]}]},
                {"type": "tableRow", "content": [
                    {"type": "tableCell", "content": [para(vec![text("prod")])]},
                    {"type": "tableCell", "content": [para(vec![json!({"type": "status", "attrs": {"text": "DOWN"}})])]}]}]},
            {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "abc", "type": "file", "alt": "screen.png"}}]},
            {"type": "someFutureBlock", "content": [para(vec![text("kept")])]}
        ]});
        assert_eq!(
            to_text(&doc).unwrap(),
            "Login fails\nSince 2024-06-01, ask @Ana\nsee https://status.example🔥\n- first\n  3. nested\n- second\n\
             SELECT 1;\nSELECT 2;\n---\nenv | state\nprod | DOWN\n[screen.png]\nkept"
        );
        assert_eq!(to_text(&json!("plain")).as_deref(), Some("plain"));
        assert_eq!(to_text(&serde_json::Value::Null), None);
        assert_eq!(to_text(&json!({"type": "doc", "content": []})).as_deref(), Some(""));
    }
}
