//! The kernel's files form layers: no file of `replicas/kernel/src` imports, directly or
//! through others, a file that imports it. Host tests read every file's `crate::` paths
//! and fail on a circle, naming it, and hold the layer list of the kernel's `main.rs` to
//! the files: every file is in it, and each imports only files of lower layers.

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    /// Each module of the kernel crate (a file of `src`, `main` for the crate root) and
    /// the modules it names through `crate::` paths.
    fn imports() -> BTreeMap<String, BTreeSet<String>> {
        let dir = crate::build::workspace_root().join("replicas/kernel/src");
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("the kernel's sources") {
            let path = entry.expect("a directory entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_stem().expect("a file name").to_string_lossy();
                let text = std::fs::read_to_string(&path).expect("a readable source");
                files.insert(name.into_owned(), text);
            }
        }
        let modules: BTreeSet<String> = files.keys().cloned().collect();
        let module_of = |name: &str| {
            // A name that is not a file is an item of the crate root.
            if modules.contains(name) {
                name.to_string()
            } else {
                "main".to_string()
            }
        };
        files
            .iter()
            .map(|(module, text)| {
                let names: BTreeSet<String> = text
                    .match_indices("crate::")
                    .flat_map(|(at, _)| first_names(&text[at + "crate::".len()..]))
                    .map(|name| module_of(&name))
                    .filter(|name| name != module)
                    .collect();
                (module.clone(), names)
            })
            .collect()
    }

    /// The first path segments after `crate::`: one for `a::b`, each top-level item's for
    /// `{a, b::{c, d}}`.
    fn first_names(rest: &str) -> Vec<String> {
        let ident = |s: &str| -> String {
            s.trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        let Some(inner) = rest.strip_prefix('{') else {
            return vec![ident(rest)];
        };
        let mut names = vec![ident(inner)];
        let mut depth = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => names.push(ident(&inner[i + 1..])),
                _ => {}
            }
        }
        names.retain(|n| !n.is_empty());
        names
    }

    #[test]
    fn no_kernel_file_imports_one_of_its_importers() {
        let graph = imports();
        assert!(graph.len() > 10, "found only {:?}", graph.keys());
        // Depth-first search: a module met again while still on the path closes a circle.
        fn visit<'a>(
            graph: &'a BTreeMap<String, BTreeSet<String>>,
            module: &'a str,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) {
            if let Some(at) = path.iter().position(|m| *m == module) {
                panic!(
                    "the kernel's files import each other in a circle: {} -> {module}",
                    path[at..].join(" -> ")
                );
            }
            if !done.insert(module) {
                return;
            }
            path.push(module);
            for next in graph.get(module).into_iter().flatten() {
                visit(graph, next, path, done);
            }
            path.pop();
        }
        let mut done = BTreeSet::new();
        for module in graph.keys() {
            visit(&graph, module, &mut Vec::new(), &mut done);
        }
    }

    #[test]
    fn the_crate_root_is_imported_by_no_file() {
        // Everything shared lives in a module of its own, so `main.rs` sits on top.
        for (module, names) in imports() {
            assert!(
                !names.contains("main"),
                "{module}.rs names an item of main.rs"
            );
        }
    }

    /// The layers the crate documentation of `main.rs` lists: each numbered line's
    /// modules, in order (`main` is the last layer).
    fn documented_layers() -> Vec<Vec<String>> {
        let main = std::fs::read_to_string(
            crate::build::workspace_root().join("replicas/kernel/src/main.rs"),
        )
        .expect("the kernel's main.rs");
        let mut layers: Vec<Vec<String>> = Vec::new();
        for line in main.lines().filter_map(|l| l.strip_prefix("//! ")) {
            let numbered = line
                .split_once(". ")
                .is_some_and(|(n, _)| n.chars().all(|c| c.is_ascii_digit()));
            if numbered {
                layers.push(Vec::new());
            } else if !line.starts_with("    ") {
                continue;
            }
            let Some(layer) = layers.last_mut() else {
                continue;
            };
            for (at, _) in line.match_indices("[`") {
                let name: String = line[at + 2..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                layer.push(name);
            }
        }
        layers.push(vec!["main".to_string()]);
        layers
    }

    #[test]
    fn every_file_is_in_the_documented_layers_and_imports_only_lower_ones() {
        let graph = imports();
        let layers = documented_layers();
        let layer_of = |module: &str| layers.iter().position(|l| l.iter().any(|m| m == module));
        for module in graph.keys() {
            assert!(
                layer_of(module).is_some(),
                "{module}.rs is not in the layer list of the kernel's main.rs"
            );
        }
        for layer in &layers {
            for module in layer {
                assert!(
                    graph.contains_key(module),
                    "main.rs lists a layer module {module} that is not a file"
                );
            }
        }
        for (module, names) in &graph {
            for name in names {
                assert!(
                    layer_of(name) < layer_of(module),
                    "{module}.rs imports {name}, which main.rs lists at the same layer or above"
                );
            }
        }
    }
}
