//! One setting of `instance.yaml` with its environment override: the environment
//! variable, else the YAML key, else the default. A leaf module, so every part of the
//! server that reads settings (query limits, the scheduler) depends on it alone.

use serde_json::Value;

/// A setting: the environment variable, else the YAML key, else the default.
pub(crate) fn setting<T: std::str::FromStr>(
    instance: &Value,
    env: &str,
    path: &[&str],
    default: T,
) -> Result<T, String> {
    let yaml = path.iter().try_fold(instance, |v, k| v.get(k)).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    match std::env::var(env).ok().filter(|v| !v.trim().is_empty()).or(yaml) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| format!("{env} ({}): {text:?} is not valid", path.join("."))),
    }
}
