//! The server crate's modules form layers: no two top-level modules reach each other
//! (directly or round a circle), and only the HTTP side (`routes`, `serve`, `state`)
//! knows `AppState`, which composes the services for the routes. Read from the sources,
//! test code left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module and the top-level modules its code names as `crate::<module>`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap().with_extension("");
        let top = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != top {
                graph.entry(top.clone()).or_default().insert(name);
            }
        }
    }
    graph
}

#[test]
fn modules_form_layers() {
    let graph = graph();
    assert!(graph.contains_key("routes") && graph.contains_key("query"), "{graph:?}");
    // No module reaches back to one that reaches it.
    for (from, targets) in &graph {
        for to in targets {
            let mut stack = vec![to.clone()];
            let mut seen = BTreeSet::new();
            while let Some(n) = stack.pop() {
                assert_ne!(&n, from, "{from} -> {to} -> … -> {from} is a circle: {graph:?}");
                if seen.insert(n.clone()) {
                    stack.extend(graph.get(&n).into_iter().flatten().cloned());
                }
            }
        }
    }
    let knows_state: BTreeSet<&str> =
        graph.iter().filter(|(_, t)| t.contains("state")).map(|(m, _)| m.as_str()).collect();
    assert!(
        knows_state.is_subset(&BTreeSet::from(["routes", "serve", "lib"])),
        "services take what they use: {knows_state:?}"
    );
}
