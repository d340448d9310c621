//! Identifier rules of the extract contract (spec §1.4).
//!
//! These are hand-written matchers rather than regexes: they run on every view name,
//! source directory and download id, and the rules are simple enough to state in code.

/// Strict identifiers: view names, source directory names, aliases, snapshot names.
/// `^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`
pub fn is_strict_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Relaxed ("quoted") identifiers: Keboola buckets, BigQuery datasets, download ids.
/// `^[a-zA-Z0-9_][a-zA-Z0-9_.\-]{0,127}$`
pub fn is_quoted_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// BigQuery project ids: `^[a-z][a-z0-9-]{4,28}[a-z0-9]$`
pub fn is_bq_project(s: &str) -> bool {
    let b = s.as_bytes();
    (6..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..b.len() - 1].iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
}

/// The registry id a table registered under `name` gets: trimmed, lowercased, spaces
/// replaced by underscores (the original's rule, kept so ids stay predictable).
pub fn registry_id_for_name(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "_")
}

/// Double every `"` so `s` can sit inside a DuckDB quoted identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Double every `'` so `s` can sit inside a SQL string literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_identifiers() {
        for ok in ["a", "_", "orders", "Orders_2024", &"a".repeat(64)] {
            assert!(is_strict_identifier(ok), "{ok} should pass");
        }
        for bad in ["", "1abc", "a-b", "a.b", "a b", "x\"; DROP TABLE y; --", "ü", &"a".repeat(65)] {
            assert!(!is_strict_identifier(bad), "{bad} should fail");
        }
    }

    #[test]
    fn quoted_identifiers() {
        for ok in ["in.c-crm", "1table", "a_b.c-d", &"a".repeat(128)] {
            assert!(is_quoted_identifier(ok), "{ok} should pass");
        }
        for bad in ["", ".hidden", "-x", "../etc", "a/b", "a b", &"a".repeat(129)] {
            assert!(!is_quoted_identifier(bad), "{bad} should fail");
        }
        // `..` inside is allowed by the contract's regex; callers never use these as paths.
        assert!(is_quoted_identifier("a..b"));
    }

    #[test]
    fn bq_projects() {
        assert!(is_bq_project("my-project-1"));
        assert!(!is_bq_project("My-project"));
        assert!(!is_bq_project("short"));
        assert!(!is_bq_project("ends-with-"));
    }

    #[test]
    fn registry_ids() {
        assert_eq!(registry_id_for_name("  Web Sessions "), "web_sessions");
        assert_eq!(registry_id_for_name("orders"), "orders");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
